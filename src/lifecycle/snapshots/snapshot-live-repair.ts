/**
 * The two ends of a live external snapshot (snapshot-live.ts), run by the operation itself and
 * by reconcile after a crash; each step may run twice. Before the switch (`prepare`) it is
 * undone, after it (`switched`) finished. A `prepare` journal whose QEMU already switched (a
 * crash between the `transaction` and its journal entry) is finished: QEMU is asked.
 */
import type { DiskDef } from '../../domain/domain-def.js';
import { formatDomainXml, parseDomainXml } from '../../domain/index.js';
import { fileNode } from '../../qemu/argv.js';
import type { GuestResource } from '../../security/driver.js';
import type { RunningRecord } from '../../store/store.js';
import { crashPoint } from '../crash-points.js';
import { ignoreMissing } from '../device-repair.js';
import type { LifecycleEnv } from '../env.js';
import { removeOverlay } from './snapshot-disks.js';
import type { LivePlan } from './snapshot-live-plan.js';
import { SnapshotStore } from './snapshot-store.js';

function planOf(rec: RunningRecord): LivePlan {
  const text = rec.pending?.snapshot?.plan;
  if (text === undefined) throw new Error(`the journal of '${rec.name}' holds no snapshot plan`);
  return JSON.parse(text) as LivePlan;
}

/** reconcile's entry: undo or finish, whichever the guest's QEMU says. */
export async function repairLive(env: LifecycleEnv, rec: RunningRecord): Promise<void> {
  if (rec.pending?.snapshot?.phase === 'switched') await finishLive(env, rec);
  else await undoLive(env, rec);
}

/** Whether QEMU runs any disk on its new overlay already. */
async function switched(env: LifecycleEnv, rec: RunningRecord, plan: LivePlan): Promise<boolean> {
  const blocks = await env.withQmp(rec, (q) => q.execute('query-block') as Promise<{ inserted?: { 'node-name'?: string } }[]>);
  const tops = new Set(blocks.map((b) => b.inserted?.['node-name']));
  return plan.disks.some((d) => tops.has(d.newFmt));
}

/** Before the switch: QEMU's nodes and fds taken back, the overlays' labels restored, the overlays removed. */
export async function undoLive(env: LifecycleEnv, rec: RunningRecord): Promise<void> {
  const plan = planOf(rec);
  if (await switched(env, rec, plan)) {
    await finishLive(env, rec);
    return;
  }
  await env.withQmp(rec, async (q) => {
    for (const d of plan.disks) {
      for (const node of [d.newFmt, d.newFile]) await q.execute('blockdev-del', { 'node-name': node }).catch(ignoreMissing);
      if (d.overlaySet !== undefined) await q.execute('remove-fd', { 'fdset-id': d.overlaySet }).catch(ignoreMissing);
      if (d.baseSet !== undefined && d.roFd !== undefined)
        await q.execute('remove-fd', { 'fdset-id': d.baseSet, fd: d.roFd }).catch(ignoreMissing);
    }
  });
  const live = parseDomainXml(rec.liveXml);
  const manager = await env.managerFor(rec);
  const ctx = env.context(live, rec.runtimeDir);
  for (const r of rec.pending?.resources ?? []) await manager.restoreResourceLabel(live, r, ctx);
  for (const d of plan.disks) if (d.made) removeOverlay(d.made);
  env.store.endOp(rec.uuid);
}

/**
 * After the switch: each base's file node reopened read-only (QEMU takes the read-only fd svirt
 * added and closes its read-write one), the read-write fd removed from the fdset, the base's
 * labels those of a backing layer; then the definition, the snapshot's record, and last the
 * live XML and resources with the end of the journal entry.
 */
export async function finishLive(env: LifecycleEnv, rec: RunningRecord): Promise<void> {
  const plan = planOf(rec);
  await env.withQmp(rec, async (q) => {
    for (const d of plan.disks) {
      if (d.baseSet === undefined || d.roFd === undefined) continue;
      await q.execute('blockdev-reopen', { options: [fileNode(d.baseFile, { set: d.baseSet, block: d.baseBlock }, true)] });
      const sets = (await q.execute('query-fdsets')) as { 'fdset-id': number; fds: { fd: number }[] }[];
      const own = sets.find((s) => s['fdset-id'] === d.baseSet);
      for (const f of own?.fds ?? []) {
        if (f.fd !== d.roFd) await q.execute('remove-fd', { 'fdset-id': d.baseSet, fd: f.fd }).catch(ignoreMissing);
      }
    }
  });
  crashPoint('snapshot:reopened');
  const live = parseDomainXml(rec.liveXml);
  const next = parseDomainXml(plan.nextXml);
  const manager = await env.managerFor(rec);
  const liveCtx = env.context(live, rec.runtimeDir);
  const nextCtx = env.context(next, rec.runtimeDir);
  const backing: GuestResource[] = [];
  // The base goes from the guest's writable image to a backing layer. The backing labels come
  // first, so AppArmor's profile never lacks the path (set adds its `r` rule, restore drops the
  // `rw` one); the restore gives DAC's owner back but also SELinux's original label, which the
  // second set replaces at once with the backing label (two setxattr calls apart).
  for (const d of plan.disks) {
    if (d.baseBacking) await manager.setResourceLabel(next, d.baseBacking, nextCtx);
    await manager.restoreResourceLabel(live, d.oldBase, liveCtx);
    if (d.baseBacking) {
      await manager.setResourceLabel(next, d.baseBacking, nextCtx);
      backing.push(d.baseBacking);
    }
  }
  if (rec.persistent) updateDefinition(env, rec.uuid, plan);
  const snapshots = new SnapshotStore(env.store.db);
  if (!snapshots.get(rec.uuid, plan.record.name)) snapshots.add(rec.uuid, plan.record);
  const oldBases = new Set(plan.disks.map((d) => d.oldBase.path));
  const kept = rec.resources.filter((r) => !(oldBases.has(r.path) && r.role !== 'backing'));
  env.store.endOp(rec.uuid, { liveXml: plan.nextXml, resources: [...kept, ...(rec.pending?.resources ?? []), ...backing] });
}

/** The persistent definition gets the same overlays, on each disk that still names the same image. */
function updateDefinition(env: LifecycleEnv, uuid: string, plan: LivePlan): void {
  const stored = env.store.getDefinedByUuid(uuid);
  if (!stored) return;
  const def = parseDomainXml(stored.xml);
  const next = parseDomainXml(plan.nextXml);
  let changed = false;
  const disks = def.disks.map((d): DiskDef => {
    const p = plan.disks.find((x) => x.dev === d.target.dev);
    const after = next.disks.find((x) => x.target.dev === d.target.dev);
    if (!p || !after?.backingStore || d.path !== after.backingStore.path) return d;
    changed = true;
    return { ...d, type: 'file', path: after.path as string, format: 'qcow2', backingStore: after.backingStore };
  });
  if (changed) env.store.putDefinition({ uuid, name: stored.name, xml: formatDomainXml({ ...def, disks }) });
}
