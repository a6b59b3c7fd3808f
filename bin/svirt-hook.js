#!/usr/bin/env node
// What the per-guest monitor runs once QEMU has exited: dist/svirt-hook.cjs, the lean reconcile
// entry (src/cli/hook.ts), loaded with its code cache as bin/svirt.js loads the CLI.
'use strict';
const { HOOK_BUNDLE, run } = require('./svirt.js');

run(HOOK_BUNDLE);
