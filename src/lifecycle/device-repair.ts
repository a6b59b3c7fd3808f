/**
 * The repair half of device changes: what finishes or undoes an attach, detach, eject or
 * insert that failed or whose svirt process died (the journal in the running record says
 * which), run by the operation itself on failure and by reconcile after a crash.
 */
import type { DiskDef, DomainDef } from '../domain/domain-def.js';
import { formatDomainXml, parseDomainXml } from '../domain/index.js';
import { SvirtError } from '../errors.js';
import { QmpCommandError, type QmpClient } from '../qemu/qmp-client.js';
import type { RunningRecord } from '../store/store.js';
import type { LifecycleEnv } from './env.js';

/** Takes block nodes and fdsets back from QEMU; what is already gone is not an error. */
async function releaseQemuSide(q: QmpClient, nodes: readonly string[], fdsets: readonly number[]): Promise<void> {
  for (const node of nodes) await q.execute('blockdev-del', { 'node-name': node }).catch(ignoreMissing);
  for (const set of fdsets) await q.execute('remove-fd', { 'fdset-id': set }).catch(ignoreMissing);
}

export function ignoreMissing(err: unknown): void {
  if (err instanceof QmpCommandError) return; // not found / already removed
  throw err;
}

/** device_del needs the guest's cooperation on PCI; SCSI devices go at once. */
export async function waitDeviceGone(q: QmpClient, id: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const tree = (await q.execute('qom-list', { path: '/machine/peripheral' })) as { name: string }[];
    if (!tree.some((p) => p.name === id)) return;
    if (Date.now() > deadline) {
      throw new SvirtError(
        'SVIRT_ERR_TIMEOUT',
        `the guest did not release device ${id} within ${timeoutMs} ms (PCI unplug needs the guest OS to answer)`,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Finishes or undoes an interrupted device operation (or a failed one): an attach or insert
 * is undone, a detach or eject is completed. Afterwards QEMU, the labels and the record agree.
 */
export async function repairOp(env: LifecycleEnv, rec: RunningRecord): Promise<void> {
  const op = rec.pending;
  if (!op) return;
  const live = parseDomainXml(rec.liveXml);
  const resources = op.resources ?? [];
  const ctx = env.context(live, rec.runtimeDir);
  const manager = await env.managerFor(rec);
  await env.withQmp(rec, async (q) => {
    if (op.op === 'attach' && op.device) {
      await q.execute('device_del', { id: op.device }).catch(ignoreMissing);
      await waitDeviceGone(q, op.device).catch(() => undefined); // a PCI device may linger; its nodes stay busy then
    }
    if ((op.op === 'eject' || op.op === 'insert') && op.device) {
      await q.execute('blockdev-open-tray', { id: op.device, force: true }).catch(ignoreMissing);
      await q.execute('blockdev-remove-medium', { id: op.device }).catch(ignoreMissing);
      await q.execute('blockdev-close-tray', { id: op.device }).catch(ignoreMissing);
    }
    const fdsets =
      op.fdsets ??
      (await fdsetsFor(
        q,
        resources.map((r) => r.path),
      ));
    await releaseQemuSide(q, op.nodes ?? [], fdsets);
  });
  for (const r of resources) await manager.restoreResourceLabel(live, r, ctx);
  const gone = new Set(resources.map((r) => r.path));
  const left = rec.resources.filter((r) => !gone.has(r.path));
  if (op.op === 'detach' || op.op === 'eject') {
    const next: DomainDef =
      op.op === 'detach'
        ? { ...live, disks: live.disks.filter((d) => d.target.dev !== op.target) }
        : { ...live, disks: live.disks.map((d) => (d.target.dev === op.target ? withoutMedium(d) : d)) };
    env.store.endOp(rec.uuid, { liveXml: formatDomainXml(next), resources: left });
  } else {
    env.store.endOp(rec.uuid, { resources: left });
  }
}

function withoutMedium(d: DiskDef): DiskDef {
  const { path: _p, backingStore: _b, ...rest } = d;
  void _p;
  void _b;
  return rest;
}

/** The fdsets QEMU holds for these paths (their opaque note is the path). */
async function fdsetsFor(q: QmpClient, paths: readonly string[]): Promise<number[]> {
  const sets = (await q.execute('query-fdsets')) as { 'fdset-id': number; fds: { opaque?: string }[] }[];
  return sets.filter((s) => s.fds.some((f) => f.opaque !== undefined && paths.includes(f.opaque))).map((s) => s['fdset-id']);
}
