#!/bin/sh
# Sets everything up (packages, npm ci, native helpers, TypeScript) and runs every test.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
npm test
