#!/usr/bin/env node
// What the per-guest monitor runs once QEMU has exited: dist/svirt-hook.cjs, the lean reconcile
// entry (src/cli/hook.ts), loaded with its code cache as bin/svirt.js loads the CLI.
'use strict';
const { join } = require('node:path');
const { cache, load } = require('./svirt.js');

const BUNDLE = join(__dirname, '..', 'dist', 'svirt-hook.cjs');

load(BUNDLE, cache(BUNDLE))
  .exports.main(process.argv.slice(2))
  .then((code) => {
    process.exitCode = code;
  });
