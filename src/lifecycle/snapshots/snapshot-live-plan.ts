/** The journalled plan of a live external snapshot (snapshot-live.ts, snapshot-live-repair.ts). */
import type { BackingStoreDef, DiskDef } from '../../domain/domain-def.js';
import type { GuestResource } from '../../security/driver.js';
import type { PendingOp } from '../../store/store.js';
import type { MadeOverlay } from './snapshot-disks.js';
import type { SnapshotRecord } from './snapshot-xml.js';

/** One disk of a live snapshot, as journalled. */
export interface LiveDisk {
  readonly dev: string;
  readonly overlay: string;
  made?: MadeOverlay;
  /** The base image as the record holds it (role disk) and as it will be held (role backing). */
  readonly oldBase: GuestResource;
  baseBacking?: GuestResource;
  /** The overlay's new fdset; the base's fdset and the read-only fd svirt added to it. */
  overlaySet?: number;
  baseSet?: number;
  roFd?: number;
  /** Node names: the old top (the base's format node), the base's file node, the overlay's two. */
  readonly baseFmt: string;
  readonly baseFile: string;
  readonly baseBlock: boolean;
  readonly newFmt: string;
  readonly newFile: string;
}

export interface LivePlan {
  readonly disks: LiveDisk[];
  /** The live definition once every disk has its overlay. */
  readonly nextXml: string;
  readonly record: SnapshotRecord;
}

/** The disk as it is after its snapshot: the overlay (qcow2) over the image it had. */
export function withOverlay(d: DiskDef, file: string): DiskDef {
  if (d.path === undefined) return d;
  const backing: BackingStoreDef = {
    type: d.type,
    format: d.format,
    path: d.path,
    ...(d.backingStore ? { backingStore: d.backingStore } : {}),
  };
  return { ...d, type: 'file', path: file, format: 'qcow2', backingStore: backing };
}

export function planOp(plan: LivePlan, phase: 'prepare' | 'switched', resources: readonly GuestResource[]): PendingOp {
  return { op: 'snapshot', resources, snapshot: { phase, plan: JSON.stringify(plan) } };
}
