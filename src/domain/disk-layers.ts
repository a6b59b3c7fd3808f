import type { DiskDef, DiskFormat } from './domain-def.js';

/** One layer of a disk: its source (index 0) or a declared backing file, deepest last. */
export interface DiskLayer {
  readonly index: number;
  readonly path: string;
  readonly format: DiskFormat;
  /** Only the top layer of a writable disk is opened for writing. */
  readonly readonly: boolean;
  /** `vda#0`: the key of this layer's fd and fdset. */
  readonly key: string;
  /**
   * QEMU block node names of this layer (protocol and format nodes), numbered from the bottom
   * of the chain (the deepest layer is 0, the top of an n-layer chain n-1): a live external
   * snapshot puts a new top over a running chain, and every layer keeps its name
   * (docs/snapshots.md). Take the top's from `diskLayers(disk)[0]`, never by number.
   */
  readonly fileNode: string;
  readonly fmtNode: string;
}

/**
 * The one walk over a disk's layers, used for its resources (labels), the fds svirt opens,
 * QEMU's -blockdev nodes and the journal of a hotplug. A disk without a medium has none.
 */
export function diskLayers(disk: DiskDef): DiskLayer[] {
  if (disk.path === undefined) return [];
  const dev = disk.target.dev;
  let count = 1;
  for (let b = disk.backingStore; b; b = b.backingStore) count++;
  const layer = (index: number, path: string, format: DiskFormat, readonly: boolean): DiskLayer => ({
    index,
    path,
    format,
    readonly,
    key: `${dev}#${index}`,
    fileNode: `${dev}-file${count - 1 - index}`,
    fmtNode: `${dev}-fmt${count - 1 - index}`,
  });
  const out = [layer(0, disk.path, disk.format, disk.readonly || disk.device === 'cdrom')];
  for (let b = disk.backingStore; b; b = b.backingStore) out.push(layer(out.length, b.path, b.format, true));
  return out;
}
