// The native floor of a store-changing CLI verb (issue 17; docs/bench.md, "Session 28"): what a
// fresh Node process spends on svirt's addon, better-sqlite3's addon, opening the store as
// src/store/store.ts opens it, one IMMEDIATE transaction that changes a row, the close and the
// WAL's sync, with none of svirt's JavaScript. Each piece is timed in a child process of its
// own (fresh, as a verb is) and the medians printed:
//   node scripts/store-floor.mjs STATE_DIR [RUNS]
// STATE_DIR must hold a store with at least one defined guest (its row is rewritten as it is).
// better-sqlite3's JavaScript is loaded too (by require, uncached) but not counted: svirt's
// bundles carry it with their code caches.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const [stateDir, runsArg] = process.argv.slice(2);
const db = stateDir === undefined ? undefined : join(stateDir, 'svirt.db');
if (db === undefined || !existsSync(db)) {
  process.stderr.write('usage: node scripts/store-floor.mjs STATE_DIR [RUNS] (a state dir with a store)\n');
  process.exit(2);
}
const runs = Math.min(Math.max(Number(runsArg ?? 15) || 15, 1), 200);
const addon = join(root, 'native', 'out', 'svirt_native.node');
const sqliteAddon = join(root, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node');

// The child: CommonJS, as bin/svirt.js is; prints [[piece, ms], …] on one line.
const child = `
'use strict';
const { openSync, fdatasyncSync, closeSync } = require('node:fs');
const [addon, sqliteAddon, lib, db] = process.argv.slice(1);
const out = [];
let t0 = process.hrtime.bigint();
const mark = (piece, counted = true) => {
  const t = process.hrtime.bigint();
  if (counted) out.push([piece, Number(t - t0) / 1e6]);
  t0 = t;
};
process.dlopen({ exports: {} }, addon);
mark("svirt's addon: dlopen");
const Database = require(lib);
mark('better-sqlite3 JS', false);
const b = { exports: {} };
process.dlopen(b, sqliteAddon);
mark("better-sqlite3's addon: dlopen");
const conn = new Database(db, { timeout: 10000, fileMustExist: true, nativeBinding: b.exports });
mark('new Database');
conn.loadExtension(addon, 'sqlite3_svirtstore_init');
conn.pragma('journal_mode = WAL');
conn.pragma('synchronous = NORMAL');
mark('extension, pragmas: the first statement (schema, WAL index)');
conn.prepare('BEGIN IMMEDIATE').run();
conn.prepare('UPDATE domains SET xml = xml WHERE rowid = (SELECT min(rowid) FROM domains)').run();
conn.prepare('COMMIT').run();
mark('one IMMEDIATE transaction');
conn.close();
const fd = openSync(db + '-wal', 'r');
fdatasyncSync(fd);
closeSync(fd);
mark('close, WAL sync');
process.stdout.write(JSON.stringify(out) + '\\n');
process.exit(0);
`;

const lib = join(root, 'node_modules', 'better-sqlite3', 'lib', 'database.js');
const samples = new Map();
for (let i = 0; i < runs; i++) {
  const r = spawnSync(process.execPath, ['-e', child, addon, sqliteAddon, lib, db], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) {
    process.stderr.write(`error: the child failed: ${(r.stderr || r.error?.message || '').trim().split('\n')[0]}\n`);
    process.exit(1);
  }
  for (const [piece, ms] of JSON.parse(r.stdout.trim())) samples.set(piece, [...(samples.get(piece) ?? []), ms]);
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
let total = 0;
for (const [piece, xs] of samples) {
  total += median(xs);
  process.stdout.write(`${piece.padEnd(62)} ${median(xs).toFixed(2)} ms\n`);
}
process.stdout.write(`${'the floor (sum of medians)'.padEnd(62)} ${total.toFixed(2)} ms (${runs} runs)\n`);
