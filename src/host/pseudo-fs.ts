import { statfsSync } from 'node:fs';

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

/**
 * The name of the pseudo filesystem `path` is on (proc, sysfs, ...), or undefined for a real
 * one or when it cannot be told (whoever opens the path then reports what goes wrong).
 */
export function pseudoFilesystem(path: string): string | undefined {
  try {
    return PSEUDO_FS.get(statfsSync(path).type >>> 0);
  } catch {
    return undefined;
  }
}
