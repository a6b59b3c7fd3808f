/**
 * Paths svirt would create things under (its state dir, a serve socket) must be on a real
 * filesystem. Inside /proc, Node's recursive mkdir loops forever (mkdir there fails with
 * ENOENT, which it takes for a missing parent), and nothing svirt writes belongs in /sys.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { SvirtError } from '../errors.js';
import { pseudoFilesystem } from '../host/pseudo-fs.js';

/** The nearest ancestor of `path` (or itself) that exists. */
function nearestExisting(path: string): string {
  let d = path;
  while (!existsSync(d) && dirname(d) !== d) d = dirname(d);
  return d;
}

/** The root of the mount holding `path`: the highest ancestor on the same device. */
function mountRoot(path: string): string {
  let d = path;
  const dev = statSync(d).dev;
  while (dirname(d) !== d && statSync(dirname(d)).dev === dev) d = dirname(d);
  return d;
}

/**
 * Refuses `path` (made absolute) if it is on, or would be created under, a pseudo
 * filesystem; `role` names it in the error (`the state dir`). Returns the absolute path.
 */
export function requireRealFilesystem(path: string, role: string): string {
  const abs = resolve(path);
  const existing = nearestExisting(abs);
  const fs = pseudoFilesystem(existing);
  if (fs === undefined) return abs;
  throw new SvirtError(
    'SVIRT_ERR_USAGE',
    `cannot use "${path}" as ${role}: it is inside ${mountRoot(existing)}, a ${fs} filesystem`,
    {
      details: { path, filesystem: fs },
    },
  );
}
