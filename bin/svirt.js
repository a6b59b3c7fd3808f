#!/usr/bin/env node
// The svirt CLI entry. `npm run build` makes dist/svirt.cjs, the CLI (dist/src/cli/main.js and
// everything it imports) bundled into one CommonJS file, and dist/svirt.cjs.cache, V8's compiled
// code for it (scripts/bundle.mjs). Loading one file with its code cache instead of ~190 ES
// modules is what keeps a verb within a few ms of Node's own start (docs/bench.md). This file
// is CommonJS (bin/package.json): an ES module entry would start Node's ESM loader for nothing.
'use strict';
const { readFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { dirname, join } = require('node:path');
const { Script } = require('node:vm');

const BUNDLE = join(__dirname, '..', 'dist', 'svirt.cjs');
/** The monitor's lean reconcile entry (src/cli/hook.ts), run by bin/svirt-hook.js. */
const HOOK_BUNDLE = join(__dirname, '..', 'dist', 'svirt-hook.cjs');

/**
 * Compiles the bundle as Node compiles a CommonJS module (the same wrapper, so the code cache
 * made by scripts/bundle.mjs matches), runs it, and returns its exports and its Script.
 * A cache V8 rejects (another Node, other flags) only costs the compile it would have saved.
 */
function load(file, cachedData) {
  let source;
  try {
    source = readFileSync(file, 'utf8');
  } catch (err) {
    process.stderr.write(`error: svirt is not built: run npm run build (${err.code ?? err.message}: ${file})\n`);
    process.exit(1);
  }
  const wrapped = `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
  const script = new Script(wrapped, { filename: file, ...(cachedData ? { cachedData } : {}) });
  const mod = { exports: {} };
  script.runInThisContext()(mod.exports, createRequire(file), mod, file, dirname(file));
  return { exports: mod.exports, script };
}

function cache(file) {
  try {
    return readFileSync(`${file}.cache`);
  } catch {
    return undefined; // not made (yet): compiled from source
  }
}

/**
 * Runs a bundle's `main` on this process's arguments; its answer is the exit status. Not
 * process.exit(): the store closes in Node's teardown (the WAL checkpoint, and the error a
 * full disk gives there, test/e2e/cli.test.ts).
 */
function run(file) {
  load(file, cache(file))
    .exports.main(process.argv.slice(2))
    .then((code) => {
      process.exitCode = code;
    });
}

if (require.main === module) run(BUNDLE);
else module.exports = { BUNDLE, HOOK_BUNDLE, load, run };
