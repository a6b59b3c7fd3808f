#!/bin/sh
# Sets everything up (packages, npm ci, native helpers, TypeScript) and runs every test:
# lint, the benchmark's quick mode (so it cannot rot), the enforcement lab (SELinux and
# AppArmor kernels under QEMU, as root), then the test suite, whose summary comes last.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
npm run -s lint
npm run -s bench -- --quick
if [ "$(id -u)" -eq 0 ]; then
  npm run -s test:enforce -- --no-build
else
  echo "test.sh: the enforcement lab needs root; skipped"
fi
npm test
