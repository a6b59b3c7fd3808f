// Structure checks of src/ (issue 12; STYLE.md), the last step of `npm run lint`:
//   1. no import cycle between files: madge over the TypeScript sources, resolving `./x.js`
//      specifiers to `./x.ts` as nodenext does; type-only imports and re-exports count (a
//      cycle of types is still two files that cannot be read one without the other). An
//      import madge cannot resolve fails the check too: a missing edge could hide a cycle.
//   2. no file in src/ (tests excluded) longer than 300 lines, unless one of its first 10
//      lines is a line comment `// Long file: <why>`.
// Both are reported before the exit status says whether either failed.
//   node scripts/check-structure.mjs [ROOT]    (ROOT: a checkout, default this one)
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import madge from 'madge';

const root = process.argv[2] ?? fileURLToPath(new URL('..', import.meta.url));
const src = join(root, 'src');
const MAX_LINES = 300;
const MARKER_WITHIN = 10;
const MARKER = /^\s*\/\/ Long file: \S/;

let failed = false;

const graph = await madge(src, {
  fileExtensions: ['ts'],
  tsConfig: join(root, 'tsconfig.json'),
  detectiveOptions: { ts: { skipTypeImports: false }, tsx: { skipTypeImports: false } },
});
const skipped = graph.warnings().skipped;
if (skipped.length > 0) {
  failed = true;
  console.error(`import graph: madge could not resolve ${skipped.length} import(s), so a cycle could hide behind them:`);
  for (const s of skipped) console.error(`  ${s}`);
}
const cycles = graph.circular();
if (cycles.length > 0) {
  failed = true;
  console.error(`import cycles in src/ (${cycles.length}; each file imports the next, the last imports the first):`);
  for (const c of cycles) console.error(`  ${c.map((f) => `src/${f}`).join(' -> ')}`);
  // madge names one cycle per back edge it meets; the groups say which files are tangled in all
  for (const group of tangles(graph.obj())) console.error(`  tangled together: ${group.map((f) => `src/${f}`).join(', ')}`);
} else {
  console.log(`import graph: ${Object.keys(graph.obj()).length} files in src/, no cycle`);
}

/** Strongly connected components of more than one file (Tarjan), each sorted. */
function tangles(edges) {
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const out = [];
  const visit = (v) => {
    index.set(v, index.size);
    low.set(v, index.get(v));
    stack.push(v);
    onStack.add(v);
    for (const w of edges[v] ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
    }
    if (low.get(v) !== index.get(v)) return;
    const group = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      group.push(w);
    } while (w !== v);
    if (group.length > 1) out.push(group.sort());
  };
  for (const v of Object.keys(edges).sort()) if (!index.has(v)) visit(v);
  return out;
}

function walk(dir, out) {
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (entry.endsWith('.ts') && !entry.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
const long = [];
for (const file of walk(src, []).sort()) {
  const lines = readFileSync(file, 'utf8').replace(/\n$/, '').split('\n');
  if (lines.length <= MAX_LINES) continue;
  if (lines.slice(0, MARKER_WITHIN).some((l) => MARKER.test(l))) continue;
  long.push(`  ${relative(root, file)}: ${lines.length} lines`);
}
if (long.length > 0) {
  failed = true;
  console.error(
    `files in src/ over ${MAX_LINES} lines without a "// Long file: <why>" comment in their first ${MARKER_WITHIN} lines ` +
      `(split them along a real seam, or say why not):`,
  );
  for (const l of long) console.error(l);
} else {
  console.log(`file length: no file in src/ over ${MAX_LINES} lines without a reason`);
}
process.exit(failed ? 1 : 0);
