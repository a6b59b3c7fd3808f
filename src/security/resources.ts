import { realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { BackingStoreDef, DiskDef, DomainDef } from '../domain/domain-def.js';
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
  if (disk.path === undefined) return [];
  const out: GuestResource[] = [{ path: disk.path, role: diskRole(disk), seclabels: disk.seclabels, disk }];
  for (let layer: BackingStoreDef | undefined = disk.backingStore; layer; layer = layer.backingStore) {
    out.push({ path: layer.path, role: 'backing', seclabels: disk.seclabels, disk });
  }
  return out;
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
    if (c.path !== undefined && (c.type === 'file' || c.type === 'unix')) {
      out.push({ path: c.path, role: 'chardev', seclabels: c.seclabels });
    }
  }
  return dedupe(out);
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
 * Resolves symlinks so labels land on the real file and a later swap of the link cannot
 * redirect a restore. A path that does not exist yet (a chardev log, a socket QEMU will
 * create) resolves through its parent.
 */
export function resolvePath(path: string): string {
  try {
    return realpathSync(path);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw wrap(path, err);
  }
  try {
    return join(realpathSync(dirname(path)), basename(path));
  } catch (err) {
    throw wrap(path, err);
  }
}

function wrap(path: string, err: unknown): SvirtError {
  return new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot resolve "${path}": ${errnoOf(err) ?? String(err)}`, {
    details: { path },
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

/** The stored form of resources (no disk objects; they are found again by path). */
export function serializeResources(list: readonly GuestResource[]): string {
  return JSON.stringify(
    list.map((r) => ({ path: r.path, ...(r.declared ? { declared: r.declared } : {}), role: r.role, seclabels: r.seclabels })),
  );
}

export function deserializeResources(text: string): GuestResource[] {
  return JSON.parse(text) as GuestResource[];
}
