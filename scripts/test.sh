#!/bin/sh
# Sets everything up (packages, npm ci, native helpers, TypeScript) and runs every test.
# The benchmark's quick mode runs first so it cannot rot; the test summary comes last.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
npm run -s bench -- --quick
npm test
