import { lstatSync, readlinkSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ChardevDef, DiskDef, DomainDef } from '../domain/domain-def.js';
import { diskLayers } from '../domain/disk-layers.js';
import { SvirtError, errnoOf } from '../errors.js';
import type { GuestResource, ResourceRole } from './driver.js';

/** The role of a disk's own source file. */
export function diskRole(disk: DiskDef): ResourceRole {
  if (disk.readonly || disk.device === 'cdrom') return 'disk-readonly';
  if (disk.shareable) return 'disk-shareable';
  return 'disk';
}

/** The resources of one disk: its source, then each declared backing layer. */
export function diskResources(disk: DiskDef): GuestResource[] {
  return diskLayers(disk).map((l) => ({
    path: l.path,
    role: l.index === 0 ? diskRole(disk) : 'backing',
    seclabels: disk.seclabels,
    disk,
  }));
}

/**
 * Every file a guest's QEMU gets, with why. The runtime dir comes first so drivers hand it
 * over before anything inside it is created.
 */
export function guestResources(def: DomainDef, runtimeDir: string): GuestResource[] {
  const out: GuestResource[] = [{ path: runtimeDir, role: 'runtime-dir', seclabels: [] }];
  const os = def.os;
  if (os.kernel !== undefined) out.push({ path: os.kernel, role: 'kernel', seclabels: [] });
  if (os.initrd !== undefined) out.push({ path: os.initrd, role: 'initrd', seclabels: [] });
  if (os.dtb !== undefined) out.push({ path: os.dtb, role: 'dtb', seclabels: [] });
  if (os.loader !== undefined) out.push({ path: os.loader.path, role: 'loader', seclabels: [] });
  if (os.nvram !== undefined) out.push({ path: os.nvram.path, role: 'nvram', seclabels: [] });
  for (const disk of def.disks) out.push(...diskResources(disk));
  for (const c of def.chardevs) {
    if (c.log) out.push(logResource(c, c.log.file, c.log.append));
    if (c.path === undefined || c.type === 'pty') continue;
    for (const path of c.type === 'pipe' ? pipePaths(c.path) : [c.path]) {
      out.push({ path, role: 'chardev', seclabels: c.seclabels, chardev: c });
    }
  }
  return dedupe(out);
}

/**
 * A chardev's `<log file>`: opened, labelled and handed over by svirt like a file chardev
 * (its `chardev` is that file; `logOf` says whose log it is).
 */
function logResource(c: ChardevDef, file: string, append: boolean | undefined): GuestResource {
  const chardev: ChardevDef = {
    element: c.element,
    type: 'file',
    path: file,
    seclabels: c.seclabels,
    ...(append ? { append } : {}),
  };
  return { path: file, role: 'chardev', seclabels: c.seclabels, chardev, logOf: c };
}

/**
 * The FIFOs of a `<serial type='pipe'>` as QEMU's pipe backend picks them (and libvirt's
 * drivers label them): PATH.in and PATH.out when both exist, else PATH both ways.
 */
export function pipePaths(path: string): string[] {
  const pair = [`${path}.in`, `${path}.out`];
  return pair.every(present) ? pair : [path];
}

function present(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    // Absent (or unreachable): the pair is not used; PATH is then opened and any error named there.
    return false;
  }
}

/** A path listed twice (a console aliasing a serial file) is labelled once. */
function dedupe(list: GuestResource[]): GuestResource[] {
  const seen = new Set<string>();
  return list.filter((r) => {
    if (seen.has(r.path)) return false;
    seen.add(r.path);
    return true;
  });
}

/**
 * Resolves a declared path as the kernel would (symlinks followed, `.` and `..` applied to
 * the resolved directory), under one rule: a symlink is followed only when root owns it or
 * its owner also owns the file it leads to (the kernel's protected_symlinks, applied to
 * every link). A user who swaps their own image for a link to /etc/shadow is refused here;
 * a swap after this point is caught by openHandle, which refuses any link on the way.
 * A path that does not exist yet (a chardev log, a socket) resolves through its parent.
 */
export function resolvePath(path: string): string {
  if (!path.startsWith('/')) {
    throw new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot resolve "${path}": it is not absolute`, { details: { path } });
  }
  const links: { link: string; uid: number }[] = [];
  let parts = path.split('/').filter((p) => p !== '' && p !== '.');
  let cur = '/';
  let hops = 0;
  let missing = false;
  while (parts.length > 0) {
    const c = parts.shift() as string;
    if (c === '..') {
      cur = dirname(cur);
      continue;
    }
    const next = join(cur, c);
    let st: Stats;
    try {
      st = lstatSync(next);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT' && parts.length === 0) {
        cur = next;
        missing = true;
        break;
      }
      throw wrap(path, err);
    }
    if (st.isSymbolicLink()) {
      if (++hops > 40) throw wrap(path, Object.assign(new Error('ELOOP'), { code: 'ELOOP' }));
      links.push({ link: next, uid: st.uid });
      const target = readlinkSync(next);
      if (target.startsWith('/')) cur = '/';
      parts = [...target.split('/').filter((p) => p !== '' && p !== '.'), ...parts];
      continue;
    }
    if (parts.length > 0 && !st.isDirectory()) throw wrap(path, Object.assign(new Error('ENOTDIR'), { code: 'ENOTDIR' }));
    cur = next;
  }
  if (links.length > 0) {
    // The owner of what the links lead to: the file, or its directory when it is yet to be made.
    const owner = lstatSync(missing ? dirname(cur) : cur).uid;
    const bad = links.find((l) => l.uid !== 0 && l.uid !== owner);
    if (bad) {
      throw new SvirtError(
        'SVIRT_ERR_PATH_INVALID',
        `refusing "${path}": the symbolic link "${bad.link}" belongs to uid ${bad.uid} but leads to "${cur}" of uid ${owner} ` +
          '(svirt follows a link only when root or the owner of its target made it)',
        { details: { path, link: bad.link, linkOwner: bad.uid, target: cur, targetOwner: owner } },
      );
    }
  }
  return cur;
}

function wrap(path: string, err: unknown): SvirtError {
  return new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot resolve "${path}": ${errnoOf(err) ?? String(err)}`, {
    details: { path, errno: errnoOf(err) },
    cause: err,
  });
}

export function resolveResources(list: readonly GuestResource[]): GuestResource[] {
  return dedupe(
    list.map((r) => {
      const path = resolvePath(r.path);
      return path === r.path ? r : { ...r, path, declared: r.path };
    }),
  );
}
