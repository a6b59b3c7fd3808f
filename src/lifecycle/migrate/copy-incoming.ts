/**
 * The destination's steps of `--copy-storage-all` (docs/migration.md, "Copying the storage"),
 * called from destination.ts: which copy the source asks for (Prepare), the export of the
 * copied disks while the guest waits for its state, and its end before `cont` (Finish). The
 * images are this host's own: labelled at start for this guest as any start labels them,
 * never handed over.
 */
import type { IncomingMigration } from '../incoming.js';
import { SvirtError } from '../../errors.js';
import { parseDomainXml } from '../../domain/index.js';
import type { PendingOp, RunningRecord } from '../../store/store.js';
import type { LifecycleEnv } from '../env.js';
import type { CopyStorage } from './copy-storage.js';
import type { MigrationCookie } from './handover.js';
import { nbdSocketPath, relayExport, removeExportSocket, startExport, stopExport, type NbdRelay } from './nbd-export.js';

/** Nothing is handed over: every file, the copied images too, is labelled at start. */
export const NOTHING_HANDED_OVER: IncomingMigration = { labelLater: () => false, attachLater: () => false };

/** The copy a Prepare is asked for, checked against the flags: undefined for a migration with shared storage. */
export function copyOf(cookie: MigrationCookie, asked: boolean, paused: boolean): CopyStorage | undefined {
  if (!asked) {
    if (cookie.copy)
      throw new SvirtError(
        'SVIRT_ERR_MIGRATE',
        'the source copies its disks but the destination was not asked to (--copy-storage-all)',
      );
    return undefined;
  }
  if (!cookie.copy)
    throw new SvirtError('SVIRT_ERR_MIGRATE', '--copy-storage-all: the source did not describe the disks it copies');
  // The export holds the disks writable until Finish; images activated at load (--paused) would conflict with it.
  if (paused)
    throw new SvirtError(
      'SVIRT_ERR_MIGRATE',
      '--copy-storage-all and --paused together are not supported: migrate, then suspend',
    );
  return cookie.copy;
}

/** Exports the copied disks of the waiting guest and opens the relay the source connects to. */
export async function exportDisks(
  env: LifecycleEnv,
  rec: RunningRecord,
  copy: CopyStorage,
  addr: string,
  deadlineMs: number,
): Promise<NbdRelay> {
  const live = parseDomainXml(rec.liveXml);
  const labels = env.manager.hasLiveLabels(live) ? env.manager.socketLabels(live) : undefined;
  const path = nbdSocketPath(env.paths.runtimeRoot, rec.uuid);
  const devs = copy.disks.map((d) => d.dev);
  await env.withQmp(rec, (q) => startExport(q, live, devs, path, labels?.listen));
  return relayExport(addr, devs.length, path, labels?.connect, deadlineMs);
}

/**
 * Finish's part: the export ends (the source has ended its mirrors; nothing may write the
 * images behind the guest once it runs), then the journal says the guest is this host's.
 * Idempotent: a repair repeats it.
 */
export async function unexportDisks(env: LifecycleEnv, rec: RunningRecord, copy: CopyStorage): Promise<void> {
  await env.withQmp(rec, (q) =>
    stopExport(
      q,
      copy.disks.map((d) => d.dev),
    ),
  );
  removeExportSocket(env.paths.runtimeRoot, rec.uuid);
  const op = rec.pending as PendingOp;
  env.store.updateOp(rec.uuid, { ...op, migration: { phase: 'committed', cookie: op.migration?.cookie ?? '' } });
}
