#!/usr/bin/env node
// Writes the AppArmor profile of svirt's manager for one install: policy/apparmor/svirt-manager.in
// with the install's absolute paths in its variables (AppArmor attaches profiles by path, so
// the launcher's own path must be in the profile). Run by policy/confine-install.sh; alone:
//   node policy/apparmor/gen-manager-profile.mjs --root DIR [--root DIR]... [--node PATH]
//     [--state-dir DIR]... [--runtime-dir DIR]... [--image-dir DIR]... [--profile-dir DIR]
// Defaults: the package this script is in, the node running it, /var/lib/svirt, /run/svirt,
// /var/lib/svirt/images, /etc/apparmor.d/svirt. Prints the profile on stdout.
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const VARS = {
  root: ['svirt_root', [fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '')]],
  node: ['svirt_node', [realpathSync(process.execPath)]],
  'state-dir': ['svirt_state', ['/var/lib/svirt']],
  'runtime-dir': ['svirt_runtime', ['/run/svirt']],
  'image-dir': ['svirt_images', ['/var/lib/svirt/images']],
  'profile-dir': ['svirt_profiles', ['/etc/apparmor.d/svirt']],
};

/** Only plain absolute paths: AppArmor would read anything else as glob or syntax. */
function checkPath(opt, p) {
  if (!/^\/[A-Za-z0-9._/+-]*$/.test(p) || p.includes('/../') || p.endsWith('/..')) {
    throw new Error(`--${opt} ${JSON.stringify(p)}: an absolute path of letters, digits and . _ - + / only`);
  }
  return p.length > 1 ? p.replace(/\/+$/, '') : p;
}

export function generate(argv) {
  const given = new Map();
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)$/.exec(argv[i] ?? '');
    if (!m || !(m[1] in VARS) || argv[i + 1] === undefined) throw new Error(`unknown or incomplete option ${argv[i]}`);
    const list = given.get(m[1]) ?? [];
    list.push(checkPath(m[1], argv[++i]));
    given.set(m[1], list);
  }
  if ((given.get('node') ?? []).length > 1) throw new Error('--node is given once');
  const lines = Object.entries(VARS).map(([opt, [name, dflt]]) => `@{${name}}=${(given.get(opt) ?? dflt).join(' ')}`);
  return readFileSync(`${here}/svirt-manager.in`, 'utf8').replace('@@VARIABLES@@', lines.join('\n'));
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.stdout.write(generate(process.argv.slice(2)));
  } catch (err) {
    process.stderr.write(`gen-manager-profile: ${err.message}\n`);
    process.exit(2);
  }
}
