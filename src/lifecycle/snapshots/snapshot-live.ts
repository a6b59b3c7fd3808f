/**
 * External (disk-only) snapshots of a running or paused guest (docs/snapshots.md, "Live
 * external snapshots"). Each disk gets a new qcow2 overlay that QEMU writes from then on; the
 * image it had becomes a read-only backing layer, for QEMU (a read-only fd) and for the labels.
 * The steps, each journalled before it acts (op `snapshot` in the running record):
 * 1. each overlay is created (O_EXCL, root 0600) and its identity journalled at once;
 * 2. overlay and base are opened again through the entrypoint checks, the overlay's labels and
 *    the base's new read-only role are journalled, then the overlay is labelled for the guest;
 * 3. QEMU gets the overlay as an fd (`add-fd`), its file and qcow2 nodes (`blockdev-add`,
 *    `"backing": null`), and an O_RDONLY fd of the base in the base's own fdset;
 * 4. one `transaction` of `blockdev-snapshot`s switches every disk at once: the commit point;
 * 5. the base's file node is reopened read-only (QEMU dups the read-only fd and drops its
 *    read-write one), the read-write fd leaves the fdset (`remove-fd`), the base gets its
 *    backing-layer labels, and the live XML, the resources, the definition and the snapshot's
 *    record are written.
 * A failure or crash before step 4 is undone (snapshot-live-repair.ts): nodes and fds taken
 * back, the overlay's labels restored, the overlay removed. From step 4 on the guest writes
 * to the overlays, so a repair finishes step 5 instead.
 */
import { constants, closeSync } from 'node:fs';
import type { DiskDef, DomainDef } from '../../domain/domain-def.js';
import { diskLayers, formatDomainXml, parseDomainXml } from '../../domain/index.js';
import { SvirtError } from '../../errors.js';
import { fileNode } from '../../qemu/argv.js';
import type { QmpClient } from '../../qemu/qmp-client.js';
import type { GuestResource } from '../../security/driver.js';
import { diskResources, resolveResources } from '../../security/resources.js';
import type { RunningRecord } from '../../store/store.js';
import { crashPoint } from '../crash-points.js';
import type { LifecycleEnv } from '../env.js';
import { dropHandle, openResources, OpenFiles } from '../files.js';
import { createOverlay, openImage } from './snapshot-disks.js';
import { finishLive, undoLive } from './snapshot-live-repair.js';
import { planOp, withOverlay, type LiveDisk, type LivePlan } from './snapshot-live-plan.js';
import type { SnapshotRecord } from './snapshot-xml.js';
import { guestEntrypoints } from '../guest-entrypoints.js';

/** The record's resource of a disk's top image (its resolved source). */
function baseResource(rec: RunningRecord, disk: DiskDef): GuestResource {
  const path = disk.path as string;
  const found = rec.resources.find((x) => x.role !== 'backing' && (x.path === path || x.declared === path));
  if (!found)
    throw new SvirtError('SVIRT_ERR_INTERNAL', `the record of '${rec.name}' has no resource for disk ${disk.target.dev}`);
  return found;
}

/**
 * Takes the snapshot; `record` is stored with the rest at the end. `files` maps each disk
 * covered to its overlay path (already checked as a normal absolute path by the caller).
 */
export async function createLive(
  env: LifecycleEnv,
  rec: RunningRecord,
  files: ReadonlyMap<string, string>,
  record: SnapshotRecord,
): Promise<void> {
  const live = parseDomainXml(rec.liveXml);
  const next: DomainDef = {
    ...live,
    disks: live.disks.map((d) => {
      const f = files.get(d.target.dev);
      return f === undefined ? d : withOverlay(d, f);
    }),
  };
  const disks: LiveDisk[] = live.disks
    .filter((d) => files.has(d.target.dev))
    .map((d) => {
      const top = diskLayers(d)[0];
      const nextTop = diskLayers(withOverlay(d, files.get(d.target.dev) as string))[0];
      if (!top || !nextTop) throw new SvirtError('SVIRT_ERR_INTERNAL', `disk ${d.target.dev} has no medium`);
      const oldBase = baseResource(rec, d);
      return {
        dev: d.target.dev,
        overlay: files.get(d.target.dev) as string,
        oldBase,
        baseFmt: top.fmtNode,
        baseFile: top.fileNode,
        baseBlock: d.type === 'block',
        newFmt: nextTop.fmtNode,
        newFile: nextTop.fileNode,
      };
    });
  const plan: LivePlan = { disks, nextXml: formatDomainXml(next), record };
  let op = planOp(plan, 'prepare', []);
  const journal = (): void => env.store.updateOp(rec.uuid, (op = planOp(plan, 'prepare', op.resources ?? [])));
  if (!env.store.beginOp(rec.uuid, op, env.me))
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${rec.name}' is busy with another operation`);
  crashPoint('snapshot:journaled');
  const manager = await env.managerFor(rec);
  const entry = guestEntrypoints(env, rec.runtimeDir, manager, rec.uuid);
  const opened = new OpenFiles();
  try {
    // 1. The overlays, each journalled by identity the moment it exists.
    for (const d of disks) {
      const disk = live.disks.find((x) => x.target.dev === d.dev) as DiskDef;
      const h = openImage(disk, entry);
      try {
        if (d.oldBase.ident && (h.identity.dev !== d.oldBase.ident.dev || h.identity.ino !== d.oldBase.ident.ino))
          throw new SvirtError(
            'SVIRT_ERR_PATH_INVALID',
            `disk ${d.dev}: "${disk.path ?? ''}" is no longer the image the guest runs on`,
          );
        await createOverlay(disk, d.overlay, h, entry, (m) => {
          d.made = m;
          journal();
        });
      } finally {
        h.close();
      }
    }
    // 2. Overlay and base through the entrypoint checks; their labels journalled, then the overlay's set.
    const ctx = env.context(next, rec.runtimeDir);
    const overlays: GuestResource[] = [];
    const handles = new Map<string, { overlay: GuestResource; base: GuestResource }>();
    for (const d of disks) {
      const disk = next.disks.find((x) => x.target.dev === d.dev) as DiskDef;
      const [overlay, base] = openResources(
        resolveResources(diskResources(disk)).slice(0, 2),
        opened,
        undefined,
        entry,
      ).resources;
      if (!overlay?.handle || !base?.handle)
        throw new SvirtError('SVIRT_ERR_INTERNAL', `disk ${d.dev}: overlay or base not opened`);
      const same = (a: { dev: number; ino: number } | undefined, b: { dev: number; ino: number }) =>
        a !== undefined && a.dev === b.dev && a.ino === b.ino;
      if (!same(d.made, overlay.handle.identity) || (d.oldBase.ident && !same(d.oldBase.ident, base.handle.identity)))
        throw new SvirtError(
          'SVIRT_ERR_PATH_INVALID',
          `disk ${d.dev}: the overlay or its base changed while the snapshot was taken`,
        );
      d.baseBacking = dropHandle(base);
      overlays.push(overlay);
      handles.set(d.dev, { overlay, base });
    }
    op = planOp(plan, 'prepare', overlays.map(dropHandle));
    env.store.updateOp(rec.uuid, op);
    for (const r of overlays) await manager.setResourceLabel(next, r, ctx);
    crashPoint('snapshot:labelled');
    // 3. and 4. QEMU's side, then the switch.
    await env.withQmp(rec, async (q) => {
      for (const d of disks)
        await addOverlay(q, d, handles.get(d.dev) as { overlay: GuestResource; base: GuestResource }, journal);
      crashPoint('snapshot:nodes-added');
      await q.execute('transaction', {
        actions: disks.map((d) => ({ type: 'blockdev-snapshot', data: { node: d.baseFmt, overlay: d.newFmt } })),
      });
    });
  } catch (err) {
    opened.closeAll();
    try {
      await undoLive(env, { ...rec, pending: op });
    } catch {
      env.store.abandon(rec.uuid); // the next reconcile undoes what is left
    }
    throw err;
  }
  opened.closeAll();
  // From here on QEMU writes to the overlays: finish, never undo.
  op = planOp(plan, 'switched', op.resources ?? []);
  env.store.updateOp(rec.uuid, op);
  crashPoint('snapshot:switched');
  try {
    await finishLive(env, { ...rec, pending: op });
  } catch (err) {
    env.store.abandon(rec.uuid);
    throw err;
  }
}

/** The overlay's fd and nodes, and the base's read-only fd beside its read-write one. */
async function addOverlay(
  q: QmpClient,
  d: LiveDisk,
  h: { overlay: GuestResource; base: GuestResource },
  journal: () => void,
): Promise<void> {
  const sets = (await q.execute('query-fdsets')) as { 'fdset-id': number; fds: { fd: number; opaque?: string }[] }[];
  const baseSet = sets.find((s) => s.fds.some((f) => f.opaque === d.oldBase.path));
  if (!baseSet) throw new SvirtError('SVIRT_ERR_QMP', `QEMU holds no fdset for "${d.oldBase.path}" (disk ${d.dev})`);
  d.baseSet = baseSet['fdset-id'];
  d.overlaySet = Math.max(99, ...sets.map((s) => s['fdset-id'])) + 1;
  journal();
  await passFd(q, h.overlay, constants.O_RDWR, d.overlaySet);
  await q.execute('blockdev-add', fileNode(d.newFile, { set: d.overlaySet }, false));
  await q.execute('blockdev-add', { driver: 'qcow2', file: d.newFile, 'node-name': d.newFmt, 'read-only': false, backing: null });
  const added = await passFd(q, h.base, constants.O_RDONLY, d.baseSet);
  d.roFd = added.fd;
  journal();
}

async function passFd(q: QmpClient, r: GuestResource, flags: number, set: number): Promise<{ fd: number }> {
  const fd = (r.handle as NonNullable<GuestResource['handle']>).reopen(flags);
  try {
    return (await q.executeWithFds('add-fd', { 'fdset-id': set, opaque: r.path }, [fd])) as { fd: number };
  } finally {
    closeSync(fd);
  }
}
