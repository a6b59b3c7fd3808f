// Makes the hostile-request test's build (test/enforce/manager.test.ts) from a copy of svirt's
// build: node lab/test-build.mjs COPY. The image-entrypoint check (issue 15,
// src/access/entrypoints.ts) refuses a disk such as /etc/shadow before the manager touches
// it; this copy has it taken out, so the request reaches the manager's own MAC confinement,
// which must stop it by itself. Only the lab makes this copy (lab/guest/stage2.sh): no
// switch a user could set turns the check off. Prints what it did.
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const copy = process.argv[2];
if (!copy) throw new Error('usage: node lab/test-build.mjs COPY');
// Every CLI bundle that has the check: the full and core ones must (bin/svirt.js picks one by the
// verb; a define or start runs in the core one). The read verbs open no file a definition names,
// and since session 27 their bundle has no check (src/lifecycle/guest-entrypoints.ts); should it
// have one again, it is taken out there too.
const dist = join(copy, 'dist');
const done = [];
const MAY_LACK = new Set(['svirt-read.cjs']);
for (const file of ['svirt.cjs', 'svirt-core.cjs', 'svirt-read.cjs']) {
  const bundle = join(dist, file);
  const text = readFileSync(bundle, 'latin1');
  // The check: the methods checkPath and checkOpened of class Entrypoints (src/access/entrypoints.ts),
  // called for every resource before anything is labelled. Each definition (not a call: no dot
  // before its name; parameter names are minified) gets a return first: every path is then
  // accepted, as before issue 15.
  const names = [];
  const out = text.replace(/([{};]\s*)(checkPath|checkOpened)(\(\s*[\w$]+\s*(?:,\s*[\w$]+\s*)?\)\s*\{)/g, (_m, pre, name, rest) => {
    names.push(`Entrypoints.${name}`);
    return `${pre}${name}${rest} return; `;
  });
  if (names.length === 0 && MAY_LACK.has(file)) {
    done.push(`${file}: no check in it`);
    continue;
  }
  if (names.length !== 2) {
    // Never a silent no-op: the hostile test must know it reaches the manager's confinement.
    console.error(`test-build: the image-entrypoint check was not found whole in ${file} (found: ${names.join(', ') || 'none'})`);
    process.exit(1);
  }
  writeFileSync(bundle, out, 'latin1');
  // the code caches belong to the original source
  for (const f of readdirSync(dist)) if (f.startsWith(`${file}.`) && f.endsWith('.cache')) rmSync(join(dist, f), { force: true });
  done.push(`${file}: ${names.join(', ')}`);
}
console.log(`test-build: image-entrypoint check taken out (${done.join('; ')}) return at once`);
