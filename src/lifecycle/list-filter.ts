/**
 * libvirt's listing filter (virConnectListAllDomains' flags, virDomainObjMatchFilter), shared
 * by the remote ConnectListAllDomains and `svirt list`'s options, on guests read as short rows.
 */
import type { GuestBrief } from './guest.js';
import type { Hypervisor } from './hypervisor.js';

/** VIR_CONNECT_LIST_DOMAINS_*: each pair filters only when one of its two flags is given. */
export const LIST = {
  ACTIVE: 1,
  INACTIVE: 2,
  PERSISTENT: 4,
  TRANSIENT: 8,
  RUNNING: 16,
  PAUSED: 32,
  SHUTOFF: 64,
  OTHER: 128,
  MANAGEDSAVE: 256,
  NO_MANAGEDSAVE: 512,
  AUTOSTART: 1024,
  NO_AUTOSTART: 2048,
  HAS_SNAPSHOT: 4096,
  NO_SNAPSHOT: 8192,
  HAS_CHECKPOINT: 16384,
  NO_CHECKPOINT: 32768,
} as const;

/** The state flags (VIR_CONNECT_LIST_DOMAINS_FILTERS_STATE). */
export const LIST_STATES = LIST.RUNNING | LIST.PAUSED | LIST.SHUTOFF | LIST.OTHER;

/** What a listing's filter may ask of a guest beyond its state, read only when a flag asks for it. */
export interface ListFacts {
  managedSave(): boolean;
  autostart(): boolean;
  hasSnapshot(): boolean;
}

/** The guest's snapshots, for the snapshot flags (a SnapshotStore). */
export interface SnapshotLister {
  list(uuid: string): readonly unknown[];
}

/**
 * Each guest's facts as svirt keeps them: the managed save file, the autostart mark, the
 * snapshot table. `snapshots` is called the first time a snapshot flag asks.
 */
export function listFacts(hv: Hypervisor, snapshots: () => SnapshotLister): (g: GuestBrief) => ListFacts {
  let lister: SnapshotLister | undefined;
  return (g) => ({
    managedSave: () => hv.hasManagedSave(g),
    autostart: () => hv.autostart(g),
    hasSnapshot: () => (lister ??= snapshots()).list(g.uuid).length > 0,
  });
}

/** Whether a guest passes the flags; svirt has no checkpoints. */
export function matchesListFilter(g: Pick<GuestBrief, 'state' | 'persistent'>, flags: number, facts: ListFacts): boolean {
  const group = (a: number, b: number, is: () => boolean): boolean =>
    (flags & (a | b)) === 0 || (is() ? (flags & a) !== 0 : (flags & b) !== 0);
  if (!group(LIST.ACTIVE, LIST.INACTIVE, () => g.state !== 'shut off')) return false;
  if (!group(LIST.PERSISTENT, LIST.TRANSIENT, () => g.persistent)) return false;
  if ((flags & LIST_STATES) !== 0) {
    const bit = g.state === 'running' ? LIST.RUNNING : g.state === 'paused' ? LIST.PAUSED : LIST.SHUTOFF;
    if ((flags & bit) === 0) return false;
  }
  return (
    group(LIST.MANAGEDSAVE, LIST.NO_MANAGEDSAVE, facts.managedSave) &&
    group(LIST.AUTOSTART, LIST.NO_AUTOSTART, facts.autostart) &&
    group(LIST.HAS_SNAPSHOT, LIST.NO_SNAPSHOT, facts.hasSnapshot) &&
    group(LIST.HAS_CHECKPOINT, LIST.NO_CHECKPOINT, () => false)
  );
}
