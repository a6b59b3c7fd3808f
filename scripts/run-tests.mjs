// Runs every compiled *.test.js under dist/ with node's test runner (Node 20 has no --test globs).
// Extra arguments are substrings that select test files, e.g. `npm test -- dac`.
// A compiled test whose .ts source is gone (left in dist/ by an older build) is not run:
// `npm run build:ts` starts from an empty dist/, and this guards a dist/ built some other way.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';

function collect(dir, out) {
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) collect(p, out);
    else if (entry.endsWith('.test.js')) out.push(p);
  }
  return out;
}

/** dist/src/a/b.test.js → src/a/b.test.ts (tsconfig: rootDir ".", outDir "dist"). */
const sourceOf = (compiled) => relative('dist', compiled).replace(/\.js$/, '.ts');

const filters = process.argv.slice(2);
const stale = [];
const files = collect('dist', [])
  .sort()
  .filter((f) => existsSync(sourceOf(f)) || (stale.push(f), false))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (stale.length > 0) console.error(`not run, no source (stale build output; npm run build:ts cleans it): ${stale.join(' ')}`);
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const concurrency = process.env.SVIRT_TEST_CONCURRENCY ?? '2';
// Each test file's process gets its own host-wide label claim dir (test/support/claim-dir.ts).
const claimDir = pathToFileURL(join('dist', 'test', 'support', 'claim-dir.js')).href;
const r = spawnSync(process.execPath, ['--import', claimDir, '--test', `--test-concurrency=${concurrency}`, ...files], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
