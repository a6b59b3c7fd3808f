/**
 * Paths svirt would create things under (its state dir, a serve socket) must be on a real
 * filesystem. Inside /proc, Node's recursive mkdir loops forever (mkdir there fails with
 * ENOENT, which it takes for a missing parent), and nothing svirt writes belongs in /sys.
 */
import { existsSync, statSync, statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { SvirtError } from '../errors.js';

/** statfs f_type of the kernel's pseudo filesystems (linux/magic.h). */
const PSEUDO_FS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x1cd1, 'devpts'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x73636673, 'securityfs'],
  [0x74726163, 'tracefs'],
  [0xf97cff8c, 'selinuxfs'],
  [0x62656570, 'configfs'],
  [0xcafe4a11, 'bpf'],
  [0x6165676c, 'pstore'],
  [0xde5e81e4, 'efivarfs'],
  [0x65735543, 'fusectl'],
  [0x42494e4d, 'binfmt_misc'],
  [0x19800202, 'mqueue'],
  [0x6e736673, 'nsfs'],
]);

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
  let type: number;
  try {
    type = statfsSync(existing).type >>> 0;
  } catch {
    return abs; // cannot tell: whoever creates the path reports what goes wrong
  }
  const fs = PSEUDO_FS.get(type);
  if (fs === undefined) return abs;
  throw new SvirtError(
    'SVIRT_ERR_USAGE',
    `cannot use "${path}" as ${role}: it is inside ${mountRoot(existing)}, a ${fs} filesystem`,
    {
      details: { path, filesystem: fs },
    },
  );
}
