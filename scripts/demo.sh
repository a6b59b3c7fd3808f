#!/bin/sh
# Sets everything up and runs the main job: the attack matrix over every available stack.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
node bin/svirt.js demo "$@"
