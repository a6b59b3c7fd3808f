// What `npm pack` would ship (package.json `files`) holds no test and no test helper, and
// holds what a user needs: the CLI, the native sources and their build script, the policy.
// Run by `npm run lint`. Without a build, dist/ is simply absent from the list.
//   node scripts/check-package.mjs
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { encoding: 'utf8' });
if (r.status !== 0) {
  console.error(`npm pack --dry-run failed (status ${r.status}):\n${r.stderr}`);
  process.exit(1);
}
const files = JSON.parse(r.stdout)[0].files.map((f) => f.path);

const forbidden = [
  [/\.test\.[^/]*$/, 'a test'],
  [/(^|\/)test-support[^/]*$/, 'a test helper'],
  [/^(dist\/)?(test|bench|lab|scripts)\//, 'test, bench, lab or dev script'],
  [/^native\/out\//, 'a binary built on this host'],
  [/^src\//, 'TypeScript source (dist/ ships)'],
];
const required = ['bin/svirt.js', 'bin/svirt-hook.js', 'bin/svirt-warm.js', 'native/build.sh', 'native/svirt-exec.c', 'policy/selinux/svirt.cil', 'README.md'];
if (existsSync('dist/src/index.js')) required.push('dist/src/index.js', 'dist/src/cli/main.js', 'dist/svirt.cjs', 'dist/svirt.cjs.cache', 'dist/svirt-read.cjs', 'dist/svirt-read.cjs.cache', 'dist/svirt-core.cjs', 'dist/svirt-core.cjs.cache', 'dist/svirt-core.cjs.define.cache', 'dist/svirt-core.cjs.start.cache', 'dist/svirt-read.cjs.list.cache', 'dist/svirt-read.cjs.dominfo.cache', 'dist/svirt-hook.cjs', 'dist/svirt-hook.cjs.cache');

const problems = [];
for (const f of files) for (const [re, what] of forbidden) if (re.test(f)) problems.push(`ships ${f} (${what})`);
for (const f of required) if (!files.includes(f)) problems.push(`does not ship ${f}`);
if (problems.length > 0) {
  console.error(`package contents (package.json "files"):\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`package contents: ${files.length} files, no test, no test helper`);
