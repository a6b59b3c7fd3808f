import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SvirtError } from '../errors.js';

let rootDir: string | undefined;

/** The package root: the first directory above this module holding package.json (dist/src/host/,
 * or dist/ where the CLI bundles are, → the package root; src/host/ when run from source). */
export function packageRoot(): string {
  if (rootDir !== undefined) return rootDir;
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) {
      rootDir = dir;
      return rootDir;
    }
    if (dirname(dir) === dir) {
      throw new SvirtError('SVIRT_ERR_NATIVE', `cannot find the svirt package root above "${start}"`);
    }
  }
}

/** The CLI entry, bin/svirt.js: what the attack matrix's local user runs. */
export function svirtMainPath(): string {
  return join(packageRoot(), 'bin', 'svirt.js');
}

/** The monitor's hook, bin/svirt-hook.js: the lean reconcile entry (src/cli/hook.ts). */
export function svirtHookPath(): string {
  return join(packageRoot(), 'bin', 'svirt-hook.js');
}
