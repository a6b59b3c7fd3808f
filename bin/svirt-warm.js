#!/usr/bin/env node
// svirt serve's warm worker (src/cli/warm-worker.ts): the full bundle with its code cache, its
// quiet verbs run once, then the CLI's commands one at a time on <runtime root>/monitor/cli.sock.
// Usage (serve runs it): svirt-warm.js STATE_DIR SERVE_PID [--debug]
'use strict';
const { BUNDLE, buildOf, cache, load } = require('./svirt.js');

const [stateDir, servePid] = process.argv.slice(2);
if (!stateDir || !/^[1-9]\d*$/.test(servePid ?? '')) {
  process.stderr.write('usage: svirt-warm.js STATE_DIR SERVE_PID [--debug]\n');
  process.exit(2);
}
const build = buildOf(); // before the load: a build that lands in between makes the next caller's differ
const bundle = load(BUNDLE, cache(BUNDLE)).exports;
bundle.runWarmWorker({ stateDir, servePid: Number(servePid), build, main: bundle.main, debug: process.argv[4] === '--debug' }).then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`warm worker: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
