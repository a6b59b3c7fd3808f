// Long file: attach, detach and media changes share their journal steps (plug, undo, finish) and the disk helpers.
import { closeSync, constants } from 'node:fs';
import type { DiskDef, DomainDef } from '../domain/domain-def.js';
import { diskLayers, formatDomainXml, parseDomainXml } from '../domain/index.js';
import { SvirtError } from '../errors.js';
import { blockdevNodes, deviceProps, diskDeviceId, diskNodeName, type FdSetEntry } from '../qemu/argv.js';
import type { QmpClient } from '../qemu/qmp-client.js';
import type { GuestResource } from '../security/driver.js';
import { diskResources, resolveResources } from '../security/resources.js';
import type { PendingOp, RunningRecord } from '../store/store.js';
import { crashPoint, type CrashPoint } from './crash-points.js';
import { targets, updateDefinition, type DeviceChangeOptions } from './device-targets.js';
import { checkHotplug, ensureScsiController, placeHotplugDisk, unplugTimeoutMs, withConfigDisk } from './device-address.js';
import { ignoreMissing, repairOp, waitDeviceGone } from './device-repair.js';
import type { LifecycleEnv } from './env.js';
import { refuseNarrowing } from './device-narrowing.js';
import { dropHandle, openResources, OpenFiles } from './files.js';
import type { Guest } from './guest.js';
import { guestEntrypoints } from './guest-entrypoints.js';

/** Journals an operation on a running guest; an operation already in flight is an error. */
function begin(env: LifecycleEnv, rec: RunningRecord, op: PendingOp): void {
  if (!env.store.beginOp(rec.uuid, op, env.me)) {
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${rec.name}' is busy with another operation`);
  }
}

/** Reopens each layer from its checked handle and hands it to QEMU with add-fd (SCM_RIGHTS). */
async function passDiskFds(
  q: QmpClient,
  disk: DiskDef,
  resources: readonly GuestResource[],
  op: PendingOp,
  journal: (op: PendingOp) => void,
): Promise<Map<string, FdSetEntry>> {
  const existing = (await q.execute('query-fdsets')) as { 'fdset-id': number }[];
  let next = Math.max(99, ...existing.map((f) => f['fdset-id'])) + 1;
  const sets = new Map<string, FdSetEntry>();
  for (const layer of diskLayers(disk)) {
    const r = resources[layer.index];
    if (!r?.handle) throw new SvirtError('SVIRT_ERR_INTERNAL', `disk ${disk.target.dev} layer ${layer.index} was not opened`);
    const fd = r.handle.reopen(layer.readonly ? constants.O_RDONLY : constants.O_RDWR);
    const set = next++;
    op = { ...op, fdsets: [...(op.fdsets ?? []), set] };
    journal(op);
    try {
      await q.executeWithFds('add-fd', { 'fdset-id': set, opaque: r.path }, [fd]);
    } finally {
      closeSync(fd);
    }
    const block = r.handle.kind === 'block';
    sets.set(layer.key, { fd: -1, set, path: r.path, readonly: layer.readonly, ...(block ? { block } : {}) });
  }
  return sets;
}

function nodeNames(disk: DiskDef): string[] {
  return diskLayers(disk).flatMap((l) => [l.fmtNode, l.fileNode]);
}

export async function attachDisk(env: LifecycleEnv, info: Guest, disk: DiskDef, opts: DeviceChangeOptions): Promise<void> {
  const t = targets(env, info, opts);
  if (t.config) {
    updateDefinition(env, info.def.uuid, (def) => {
      if (def.disks.some((d) => d.target.dev === disk.target.dev)) {
        throw new SvirtError(
          'SVIRT_ERR_OPERATION_INVALID',
          `target ${disk.target.dev} already exists in the definition of '${def.name}'`,
        );
      }
      return withConfigDisk(def, disk);
    });
  }
  if (!t.live || !t.rec) return;
  const rec = t.rec;
  let live = parseDomainXml(rec.liveXml);
  if (live.disks.some((d) => d.target.dev === disk.target.dev)) {
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `target ${disk.target.dev} is already in use by '${live.name}'`);
  }
  checkHotplug(disk);
  if (disk.target.bus === 'scsi') live = await env.withQmp(rec, (q) => ensureScsiController(env, rec, live, q));
  // A free root port or slot, recorded with the disk in the live XML (device-address.ts).
  const placed = placeHotplugDisk(live, disk);
  const next: DomainDef = { ...live, disks: [...live.disks, placed] };
  await plugDisk(env, {
    rec,
    kind: 'attach',
    disk: placed,
    next,
    points: ATTACH_POINTS,
    connect: async (q) => {
      await q.execute('device_add', deviceProps(next, placed, placed.path !== undefined ? diskNodeName(placed) : undefined));
    },
  });
}

interface PlugPoints {
  readonly journaled: CrashPoint;
  readonly labelled?: CrashPoint;
  readonly fdsPassed?: CrashPoint;
  readonly plugged: CrashPoint;
}
const ATTACH_POINTS: PlugPoints = {
  journaled: 'attach:journaled',
  labelled: 'attach:labelled',
  fdsPassed: 'attach:fds-passed',
  plugged: 'attach:plugged',
};
const INSERT_POINTS: PlugPoints = { journaled: 'media:insert-journaled', plugged: 'media:inserted' };

/**
 * Gives a running guest one more disk or medium: journal the operation, label every layer,
 * hand the layers to QEMU as fds and block nodes, then `connect` them (device_add or the
 * tray). On failure everything is undone; on success the live XML and resources land with
 * the end of the journal entry.
 */
async function plugDisk(env: LifecycleEnv, plug: Plug): Promise<void> {
  const files = new OpenFiles();
  try {
    await plugOpened(env, plug, files);
  } finally {
    files.closeAll();
  }
}

/** One disk or medium going into a running guest, and how to connect it once its nodes exist. */
interface Plug {
  readonly rec: RunningRecord;
  readonly kind: 'attach' | 'insert';
  readonly disk: DiskDef;
  readonly next: DomainDef;
  readonly points: PlugPoints;
  readonly connect: (q: QmpClient) => Promise<void>;
}

/** Resolves, opens (O_PATH) and checks a medium as its insert will, labelling nothing. */
async function checkMedium(env: LifecycleEnv, rec: RunningRecord, disk: DiskDef): Promise<void> {
  const entry = guestEntrypoints(env, rec.runtimeDir, await env.managerFor(rec), rec.uuid);
  const probe = new OpenFiles();
  try {
    openResources(resolveResources(diskResources(disk)), probe, undefined, entry);
  } finally {
    probe.closeAll();
  }
}

async function plugOpened(env: LifecycleEnv, plug: Plug, files: OpenFiles): Promise<void> {
  const { rec, kind, disk, next, points, connect } = plug;
  // Resolved (symlink policy) and opened once: the label and the fd QEMU gets are that file.
  const entry = guestEntrypoints(env, rec.runtimeDir, await env.managerFor(rec), rec.uuid);
  const resources =
    disk.path === undefined ? [] : openResources(resolveResources(diskResources(disk)), files, undefined, entry).resources;
  let op: PendingOp = {
    op: kind,
    target: disk.target.dev,
    resources,
    nodes: nodeNames(disk),
    device: diskDeviceId(disk),
    fdsets: [],
  };
  begin(env, rec, op);
  crashPoint(points.journaled);
  const ctx = env.context(next, rec.runtimeDir);
  const manager = await env.managerFor(rec);
  try {
    for (const r of resources) await manager.setResourceLabel(next, r, ctx);
    (await import('./cgroup/hotplug.js')).allowPlugged(env.paths.stateDir, rec.uuid, resources, disk.readonly === true); // cgroups.md
    if (points.labelled) crashPoint(points.labelled);
    await env.withQmp(rec, async (q) => {
      const sets = await passDiskFds(q, disk, resources, op, (o) => {
        op = o;
        env.store.updateOp(rec.uuid, o);
      });
      if (points.fdsPassed) crashPoint(points.fdsPassed);
      for (const node of blockdevNodes(disk, sets)) await q.execute('blockdev-add', node);
      await connect(q);
    });
    crashPoint(points.plugged);
  } catch (err) {
    await undo(env, { ...rec, pending: op });
    throw err;
  }
  env.store.endOp(rec.uuid, {
    liveXml: formatDomainXml(next),
    resources: [...rec.resources, ...resources.map(dropHandle)],
  });
}

/** The journal entry of a disk or medium leaving a running guest (completed by repairOp). */
function removalOp(kind: 'detach' | 'eject', rec: RunningRecord, disk: DiskDef): PendingOp {
  return {
    op: kind,
    target: disk.target.dev,
    resources: ownResources(rec, disk),
    nodes: nodeNames(disk),
    device: diskDeviceId(disk),
  };
}

export async function detachDisk(env: LifecycleEnv, info: Guest, target: string, opts: DeviceChangeOptions): Promise<void> {
  const t = targets(env, info, opts);
  if (t.config) {
    updateDefinition(env, info.def.uuid, (def) => {
      if (!def.disks.some((d) => d.target.dev === target)) {
        throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `no disk with target ${target} in the definition of '${def.name}'`);
      }
      return { ...def, disks: def.disks.filter((d) => d.target.dev !== target) };
    });
  }
  if (!t.live || !t.rec) return;
  const rec = t.rec;
  const live = parseDomainXml(rec.liveXml);
  const disk = live.disks.find((d) => d.target.dev === target);
  if (!disk) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${live.name}' has no disk with target ${target}`);
  checkHotplug(disk);
  refuseNarrowing(rec, live.name, target);
  const op = removalOp('detach', rec, disk);
  begin(env, rec, op);
  crashPoint('detach:journaled');
  try {
    await env.withQmp(rec, async (q) => {
      await q.execute('device_del', { id: diskDeviceId(disk) }).catch(ignoreMissing);
      await waitDeviceGone(q, diskDeviceId(disk), unplugTimeoutMs(live, disk));
    });
  } catch (err) {
    // The device is still there (the guest did not let go): nothing changed, the disk stays labelled.
    env.store.endOp(rec.uuid);
    throw err;
  }
  crashPoint('detach:unplugged');
  await finish(env, { ...rec, pending: op });
}

/** Undoes a failed operation; if even that fails, leaves it ownerless for the next reconcile. */
async function undo(env: LifecycleEnv, rec: RunningRecord): Promise<void> {
  try {
    await repairOp(env, rec);
    (await import('./cgroup/hotplug.js')).denyUnplugged(env.paths.stateDir, rec.uuid, rec.pending?.resources ?? []);
  } catch {
    // The operation's own error is the one to report; an ownerless journal entry is repaired later.
    env.store.abandon(rec.uuid);
  }
}

/** Completes an operation whose QEMU side is done; on failure it is left to the next reconcile. */
async function finish(env: LifecycleEnv, rec: RunningRecord): Promise<void> {
  try {
    await repairOp(env, rec);
    (await import('./cgroup/hotplug.js')).denyUnplugged(env.paths.stateDir, rec.uuid, rec.pending?.resources ?? []);
  } catch (err) {
    env.store.abandon(rec.uuid);
    throw err;
  }
}

/** The record's resources that belong to a disk (its resolved source and backing layers). */
function ownResources(rec: RunningRecord, disk: DiskDef): GuestResource[] {
  // Matched by the paths the record keeps (declared and resolved): never resolved again here.
  const paths = new Set(diskLayers(disk).map((l) => l.path));
  return rec.resources.filter(
    (r) => (paths.has(r.path) || (r.declared !== undefined && paths.has(r.declared))) && r.role !== 'runtime-dir',
  );
}

export async function changeMedia(
  env: LifecycleEnv,
  info: Guest,
  target: string,
  source: string | undefined,
  opts: DeviceChangeOptions,
): Promise<void> {
  const t = targets(env, info, opts);
  const setPath = (def: DomainDef): DomainDef => {
    const d = def.disks.find((x) => x.target.dev === target);
    if (!d || (d.device !== 'cdrom' && d.device !== 'floppy')) {
      throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${def.name}' has no removable drive ${target}`);
    }
    const { path: _old, backingStore: _b, ...rest } = d;
    void _old;
    void _b;
    const changed: DiskDef = source === undefined ? rest : { ...rest, path: source };
    return { ...def, disks: def.disks.map((x) => (x.target.dev === target ? changed : x)) };
  };
  if (t.config) updateDefinition(env, info.def.uuid, setPath);
  if (!t.live || !t.rec) return;
  let rec = t.rec;
  const live = parseDomainXml(rec.liveXml);
  const drive = setPath(live).disks.find((d) => d.target.dev === target) as DiskDef;
  const old = live.disks.find((d) => d.target.dev === target) as DiskDef;
  // The new medium's entrypoint checks come before the old one is ejected: a refused medium leaves the drive as it was.
  if (source !== undefined) await checkMedium(env, rec, { ...drive, path: source });
  if (old.path !== undefined) {
    refuseNarrowing(rec, live.name, target);
    const op = removalOp('eject', rec, old);
    begin(env, rec, op);
    crashPoint('media:eject-journaled');
    await finish(env, { ...rec, pending: op });
    rec = env.store.getRunning(rec.uuid) ?? rec;
  }
  if (source === undefined) return;
  const inserted: DiskDef = { ...drive, path: source };
  const base = parseDomainXml(rec.liveXml);
  const next: DomainDef = { ...base, disks: base.disks.map((d) => (d.target.dev === target ? inserted : d)) };
  await plugDisk(env, {
    rec,
    kind: 'insert',
    disk: inserted,
    next,
    points: INSERT_POINTS,
    connect: async (q) => {
      const id = diskDeviceId(inserted);
      await q.execute('blockdev-open-tray', { id, force: true });
      await q.execute('blockdev-insert-medium', { id, 'node-name': diskNodeName(inserted) });
      await q.execute('blockdev-close-tray', { id });
    },
  });
}
