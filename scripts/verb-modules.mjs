// Which of svirt's modules one CLI command runs code of, and which it loads for nothing
// (issue 17; docs/startup.md, "What a verb loads"):
//   SVIRT_BUNDLE_SOURCEMAP=1 npm run build:ts     (a source map beside each bundle)
//   node scripts/verb-modules.mjs -- --state-dir DIR destroy pg
// Runs the command once under V8's function-event log. The log's flag makes V8 refuse the code
// caches, so every function the command runs is compiled and logged; each is placed in its
// source module through the bundle's source map. Printed per module: the source bytes of its
// functions that ran, not counting functions nested in them that ran too, and how many ran.
// A module of which one function ran is, in esbuild's lazily initialised modules, one whose
// initialiser ran and nothing else: loaded by this command for nothing. Its cost is in the
// code cache the command reads (V8 reads all of it) and in the initialiser itself.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const SHOWN = 40;

const dash = process.argv.indexOf('--');
if (dash < 0 || dash === process.argv.length - 1) {
  process.stderr.write('usage: node scripts/verb-modules.mjs -- SVIRT-ARGS...\n');
  process.exit(2);
}
const command = process.argv.slice(dash + 1);

const dir = mkdtempSync(join(tmpdir(), 'svirt-verb-modules-'));
let log;
try {
  const file = join(dir, 'v8.log');
  const r = spawnSync(
    process.execPath,
    ['--log-function-events', `--logfile=${file}`, '--no-logfile-per-isolate', join(root, 'bin', 'svirt.js'), ...command],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  if (r.error) throw r.error;
  process.stdout.write(`svirt ${command.join(' ')}: exit ${r.status ?? r.signal}\n`);
  log = readFileSync(file, 'latin1');
} finally {
  rmSync(dir, { recursive: true, force: true });
}

/** The bundles (by script id) and the [start, end) offsets of each function that ran in them. */
const bundles = new Map();
const ran = new Map();
for (const line of log.split('\n')) {
  const f = line.split(',');
  if (f[0] === 'script-details' && /[\\/]dist[\\/][^\\/]+\.cjs$/.test(f[2] ?? '')) bundles.set(f[1], f[2]);
  if (f[0] === 'function' && f[1] === 'first-execution') {
    const list = ran.get(f[2]) ?? [];
    list.push([Number(f[3]), Number(f[4])]);
    ran.set(f[2], list);
  }
}
if (bundles.size === 0) {
  process.stderr.write('verb-modules: the command loaded no bundle (a warm worker ran it? set SVIRT_NO_WARM=1)\n');
  process.exit(1);
}

/** Each mapped offset of the bundle and the index of its source, sorted by offset. */
function mappings(bundle, map) {
  const lineStarts = [0];
  for (let i = 0; i < bundle.length; i++) if (bundle.charCodeAt(i) === 10) lineStarts.push(i + 1);
  const out = [];
  let source = 0;
  map.mappings.split(';').forEach((segments, line) => {
    let column = 0;
    for (const segment of segments.split(',')) {
      if (segment === '') continue;
      const values = [];
      let value = 0;
      let shift = 0;
      for (const ch of segment) {
        const digit = BASE64.indexOf(ch);
        value |= (digit & 31) << shift;
        if (digit & 32) shift += 5;
        else {
          values.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      column += values[0];
      if (values.length > 1) {
        source += values[1];
        out.push([lineStarts[line] + column, source]);
      }
    }
  });
  return out.sort((a, b) => a[0] - b[0]);
}

function moduleAt(points, sources, offset) {
  let lo = 0;
  let hi = points.length - 1;
  if (hi < 0 || offset < points[0][0]) return '(the bundle itself)';
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (points[mid][0] <= offset) lo = mid;
    else hi = mid - 1;
  }
  return sources[points[lo][1]].replace(/^(\.\.\/)+/, '');
}

for (const [id, path] of bundles) {
  const functions = (ran.get(id) ?? []).sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  if (!existsSync(`${path}.map`)) {
    process.stderr.write(`verb-modules: no ${path}.map: build with SVIRT_BUNDLE_SOURCEMAP=1 npm run build:ts\n`);
    process.exit(1);
  }
  const bundle = readFileSync(path, 'latin1');
  const map = JSON.parse(readFileSync(`${path}.map`, 'utf8'));
  const points = mappings(bundle, map);
  // Each function's own bytes: its length less that of the functions nested in it that ran.
  const own = functions.map(([s, e]) => e - s);
  const open = [];
  functions.forEach(([s, e], i) => {
    while (open.length > 0 && functions[open[open.length - 1]][1] <= s) open.pop();
    if (open.length > 0) own[open[open.length - 1]] -= e - s;
    open.push(i);
  });
  const modules = new Map();
  functions.forEach(([s], i) => {
    const name = moduleAt(points, map.sources, s);
    const m = modules.get(name) ?? { bytes: 0, count: 0 };
    m.bytes += own[i];
    m.count += 1;
    modules.set(name, m);
  });
  const sorted = [...modules].sort((a, b) => b[1].bytes - a[1].bytes);
  const total = sorted.reduce((n, [, m]) => n + m.bytes, 0);
  process.stdout.write(
    `\n${path}: ${functions.length} functions ran, in ${modules.size} modules (${total} bytes with the bundle's own)\n`,
  );
  for (const [name, m] of sorted.slice(0, SHOWN))
    process.stdout.write(`${String(m.bytes).padStart(8)} ${String(m.count).padStart(4)}  ${name}\n`);
  const idle = sorted.filter(([name, m]) => m.count === 1 && name !== '(the bundle itself)');
  process.stdout.write(`\nloaded, one function run (its initialiser), nothing called: ${idle.length} modules\n`);
  for (const [name, m] of idle) process.stdout.write(`${String(m.bytes).padStart(8)}  ${name}\n`);
}
