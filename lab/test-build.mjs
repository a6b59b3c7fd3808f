// Makes the hostile-request test's build (test/enforce/manager.test.ts) from a copy of svirt's
// build: node lab/test-build.mjs COPY. The image-entrypoint check (issue 15,
// src/access/entrypoints.ts) refuses a disk such as /etc/shadow before the manager touches
// it; this copy has it taken out, so the request reaches the manager's own MAC confinement,
// which must stop it by itself. Only the lab makes this copy (lab/guest/stage2.sh): no
// switch a user could set turns the check off. Prints what it did.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const copy = process.argv[2];
if (!copy) throw new Error('usage: node lab/test-build.mjs COPY');
const bundle = join(copy, 'dist', 'svirt.cjs');
const text = readFileSync(bundle, 'utf8');
// The check's entry: a function whose name says it checks image entrypoints. Its body is
// replaced by a return: every path is then accepted, as before issue 15.
const re = /(function (check\w*Entrypoints?\w*)\([^)]*\)\s*\{)/g;
const names = [...text.matchAll(re)].map((m) => m[2]);
if (names.length === 0) {
  console.log('test-build: no image-entrypoint check in this build (svirt.cjs has no check*Entrypoint* function): copy unchanged');
} else {
  writeFileSync(bundle, text.replace(re, '$1 return; '));
  // the code cache belongs to the original source
  rmSync(`${bundle}.cache`, { force: true });
  console.log(`test-build: image-entrypoint check taken out: ${names.join(', ')} return at once`);
}
