/**
 * Files on a filesystem that keeps no SELinux label (NFS, CIFS; any filesystem without
 * security xattrs on a kernel without SELinux, e.g. ramfs here). libvirt starts a guest
 * with such a file and leaves it as it is (virSecuritySELinuxSetFileconImpl); the policy's
 * type for the whole filesystem (genfscon: nfs_t, cifs_t, fusefs_t) and a boolean decide
 * whether the guest may use it. The labeller skips them; this says so, file by file.
 */
import { readFileSync, statfsSync } from 'node:fs';
import { errnoOf } from '../../errors.js';
import { withHandle, type FileHandle } from '../../host/file-handle.js';
import type { GuestResource } from '../driver.js';
import type { XattrHost } from './labeller.js';
import type { LabelAction } from './rules.js';

/**
 * The reference policy's boolean that lets svirt_t use the files of a filesystem that keeps no
 * labels, by the filesystem's name (genfscon gives nfs and nfs4 nfs_t, cifs and smbfs cifs_t,
 * fuse fusefs_t). smb3 has no genfscon rule there: its files are unlabeled_t, no boolean helps.
 */
export const POLICY_BOOLEANS: ReadonlyMap<string, string> = new Map([
  ['nfs', 'virt_use_nfs'],
  ['nfs4', 'virt_use_nfs'],
  ['cifs', 'virt_use_samba'],
  ['smbfs', 'virt_use_samba'],
  ['fuse', 'virt_use_fusefs'],
]);

/** statfs f_type names, for a file whose mount is not found in mountinfo. */
const MAGIC: ReadonlyMap<number, string> = new Map([
  [0x6969, 'nfs'],
  [0xff534d42, 'cifs'],
  [0xfe534d42, 'smb3'],
  [0x65735546, 'fuse'],
  [0x858458f6, 'ramfs'],
  [0x01021997, '9p'],
]);

/** The filesystem of an open file (as mountinfo names it), and the boolean that governs it, if any. */
export function filesystemOf(h: FileHandle): { readonly name: string; readonly boolean?: string } {
  const mount = mountOf(readFileSync('/proc/self/mountinfo', 'utf8'), h.stats.dev);
  let name = mount?.fstype;
  if (name === undefined) {
    const type = statfsSync(h.procPath).type;
    name = MAGIC.get(type) ?? `filesystem type 0x${type.toString(16)}`;
  }
  // FUSE mounts are named fuse.<subtype> (fuse.sshfs); the policy knows them as fuse.
  const boolean = POLICY_BOOLEANS.get(name.startsWith('fuse.') ? 'fuse' : name);
  return boolean === undefined ? { name } : { name, boolean };
}

/**
 * Whether the file's filesystem keeps SELinux labels. With SELinux in the kernel every file
 * reads back a label (the policy's, for a whole NFS mount), so the mount's `seclabel` option
 * says it; without, a filesystem with no security xattrs answers EOPNOTSUPP.
 */
export function takesLabels(h: FileHandle, x: Pick<XattrHost, 'fgetxattr'>, kernelRunsSelinux: boolean): boolean {
  if (kernelRunsSelinux) return mountOf(readFileSync('/proc/self/mountinfo', 'utf8'), h.stats.dev)?.seclabel ?? true;
  try {
    x.fgetxattr(h.fd, 'security.selinux');
    return true;
  } catch (err) {
    const e = errnoOf(err);
    if (e === 'EOPNOTSUPP' || e === 'ENOTSUP') return false;
    throw err;
  }
}

/** The mount of device `dev` (st_dev) in mountinfo: its filesystem type and whether it has `seclabel`. */
export function mountOf(mountinfo: string, dev: number): { readonly fstype: string; readonly seclabel: boolean } | undefined {
  const d = BigInt(dev);
  const id = `${((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn)}:${(d & 0xffn) | ((d >> 12n) & ~0xffn)}`;
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (left?.split(' ')[2] !== id || right === undefined) continue;
    const [fstype = '', , options = ''] = right.split(' ');
    return { fstype, seclabel: options.split(',').includes('seclabel') };
  }
  return undefined;
}

/** The boolean's current value when the kernel runs SELinux: `on`/`off`, else undefined. */
function booleanState(name: string, kernelRunsSelinux: boolean): string | undefined {
  if (!kernelRunsSelinux) return undefined;
  try {
    return readFileSync(`/sys/fs/selinux/booleans/${name}`, 'utf8').trim().startsWith('1') ? 'on' : 'off';
  } catch {
    // A policy without this boolean: the note names it without a value.
    return undefined;
  }
}

/** One line for a file left unlabelled: which filesystem, and what decides access instead. */
export function unlabelledNote(path: string, fs: { readonly name: string; readonly boolean?: string }, state?: string): string {
  const why = `${path}: not relabelled: ${fs.name} keeps no SELinux label`;
  if (fs.boolean === undefined) return `${why}; no virt_use_* boolean covers ${fs.name}, the policy's rule for its type decides`;
  return `${why}; the boolean ${fs.boolean}${state === undefined ? '' : ` (${state})`} decides whether the guest may use it`;
}

/** A note for every file the plan would label whose filesystem keeps no label. */
export function unlabelledNotes(
  actions: readonly LabelAction[],
  resources: readonly GuestResource[],
  x: Pick<XattrHost, 'fgetxattr'>,
  kernelRunsSelinux: boolean,
): string[] {
  const out: string[] = [];
  for (const a of actions) {
    if (a.kind !== 'set') continue;
    const ref = resources.find((r) => r.path === a.path) ?? { path: a.path };
    let note: string | undefined;
    try {
      note = withHandle(ref, 'inspect', (h) => {
        if (takesLabels(h, x, kernelRunsSelinux)) return undefined;
        const fs = filesystemOf(h);
        return unlabelledNote(a.path, fs, fs.boolean === undefined ? undefined : booleanState(fs.boolean, kernelRunsSelinux));
      });
    } catch {
      // A file gone or changed since start has nothing to say here (restore reports a change).
      note = undefined;
    }
    if (note !== undefined) out.push(note);
  }
  return out;
}
