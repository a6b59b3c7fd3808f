/**
 * `undefine NAME --remove-all-storage` (virsh's option): the guest's disks that are volumes of
 * an active pool are deleted after the definition goes, through the same vol-delete step
 * (refused while another running guest uses the file); a disk no pool holds is left, named.
 */
import type { DomainDef } from '../../domain/domain-def.js';
import type { Hypervisor } from '../../lifecycle/hypervisor.js';
import type { VolumeInfo } from '../../lifecycle/storage.js';
import { StoragePools } from '../../lifecycle/storage.js';

export interface StorageToRemove {
  readonly target: string;
  readonly path: string;
  readonly volume?: VolumeInfo;
}

/** The disks of the definition and their volumes, found before the definition goes. */
export function storageOf(hv: Hypervisor, def: DomainDef): StorageToRemove[] {
  const out: StorageToRemove[] = [];
  for (const d of def.disks) {
    if (d.device !== 'disk' || d.path === undefined) continue;
    let volume: VolumeInfo | undefined;
    try {
      volume = new StoragePools(hv.env).byPath(d.path);
    } catch {
      volume = undefined; // not in an active pool: reported, left alone
    }
    out.push({ target: d.target.dev, path: d.path, ...(volume ? { volume } : {}) });
  }
  return out;
}

/** Deletes each volume; the lines say what happened to every disk, as virsh's do. */
export function removeStorage(hv: Hypervisor, list: readonly StorageToRemove[]): string[] {
  const lines: string[] = [];
  for (const s of list) {
    if (!s.volume) {
      lines.push(`Storage volume '${s.target}'(${s.path}) is not managed by svirt. Remove it manually.`);
      continue;
    }
    try {
      new StoragePools(hv.env).deleteVolume(s.volume.pool, s.volume.name);
      lines.push(`Volume '${s.target}'(${s.path}) removed.`);
    } catch (err) {
      lines.push(`Failed to remove storage volume '${s.target}'(${s.path}): ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return lines;
}
