/**
 * The source's three steps of a migration (libvirt's Begin, Perform and Confirm, version 3):
 * describe the guest and what it hands over, stream its state to the destination, then end
 * it there or let it run on. The source stays authoritative until the destination takes the
 * first shared image (docs/migration.md); every step that fails before that leaves the
 * guest running here with its labels as they were.
 */
import { SvirtError } from '../../errors.js';
import type { PendingOp, RunningRecord } from '../../store/store.js';
import { crashPoint } from '../crash-points.js';
import type { LifecycleEnv } from '../env.js';
import { requireRunning, type Guest } from '../guest.js';
import { cleanup } from '../stop.js';
import { decodeCookie, describeHandover, encodeCookie, type MigrationCookie } from './handover.js';
import { parseDomainXml } from '../../domain/index.js';
import { describeCopy } from './copy-storage.js';
import { decide, setPhase } from './source-decide.js';
export { markFinishing } from './source-decide.js';
import { endMirrors, startMirrors, waitMirrorsReady } from './nbd-mirror.js';
import { streamEnd } from './stream-end.js';
import { connectStream, parseStreamUri } from './transfer.js';

/** Resources svirt cannot move yet: refused at Begin, before anything changes. */
const NOT_MOVABLE: Readonly<Record<string, string>> = {
  nvram: "an nvram file (it lives in the source host's state dir)",
  'tpm-state': "a TPM (its state lives in the source host's state dir)",
  'shared-dir': 'a shared folder (virtiofsd)',
  'shared-dir-readonly': 'a shared folder (virtiofsd)',
};

export interface BeginResult {
  readonly xml: string;
  readonly cookie: Buffer;
}

/** Begin: the live XML the destination starts from, and the handover (nothing changes here). */
export function migrateBegin(
  env: LifecycleEnv,
  guest: Guest,
  opts: { offline?: boolean; copyStorage?: boolean } = {},
): BeginResult {
  if (opts.offline === true) {
    if (!guest.stored)
      throw new SvirtError(
        'SVIRT_ERR_OPERATION_INVALID',
        `domain '${guest.name}' is transient: an offline migration moves a definition`,
      );
    return { xml: guest.stored.xml, cookie: encodeCookie({ v: 1, name: guest.name, uuid: guest.uuid, images: [] }) };
  }
  const rec = requireRunning(guest);
  if (rec.pending) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${guest.name}' is busy with a ${rec.pending.op}`);
  for (const r of rec.resources) {
    const why = NOT_MOVABLE[r.role];
    if (why) throw new SvirtError('SVIRT_ERR_MIGRATE', `cannot migrate '${guest.name}': it has ${why}`);
  }
  // --copy-storage-all: nothing changes hands; the destination gets copies of the disks.
  const cookie: MigrationCookie =
    opts.copyStorage === true
      ? { v: 1, name: rec.name, uuid: rec.uuid, images: [], copy: describeCopy(parseDomainXml(rec.liveXml), rec.resources) }
      : describeHandover(rec.name, rec.uuid, rec.resources, env.store, rec.stack);
  return { xml: rec.liveXml, cookie: encodeCookie(cookie) };
}

export interface MigrationProgress {
  (status: string, transferred: number, total: number): void;
}

/**
 * Perform: journal, connect to the destination's stream address, hand the socket to QEMU and
 * let it migrate (live: the vCPUs run meanwhile; otherwise paused first). QEMU ends paused
 * ('postmigrate'), its images inactive: from here it writes nothing. A failure cancels the
 * migration and resumes the guest as it was.
 */
export async function migratePerform(
  env: LifecycleEnv,
  guest: Guest,
  uri: string,
  cookie: Buffer,
  opts: { live?: boolean; copyStorage?: boolean; progress?: MigrationProgress; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<StreamStats> {
  const rec = requireRunning(guest);
  const described = decodeCookie(cookie, rec.uuid);
  if ((described.copy !== undefined) !== (opts.copyStorage ?? described.copy !== undefined))
    throw new SvirtError('SVIRT_ERR_MIGRATE', '--copy-storage-all must be asked at every step of the migration');
  const target = parseStreamUri(uri);
  const op: PendingOp = {
    op: 'migrate-out',
    wasRunning: !rec.paused,
    migration: { phase: 'performing', cookie: JSON.stringify(described), uri },
  };
  if (!env.store.beginOp(rec.uuid, op, env.me)) {
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${rec.name}' is busy with another operation`);
  }
  crashPoint('migrate-out:journaled');
  const timeoutMs = opts.timeoutMs ?? 600_000;
  try {
    const live = parseDomainXml(rec.liveXml);
    const label = env.manager.hasLiveLabels(live) ? env.manager.socketLabels(live)?.listen : undefined;
    const copy = described.copy;
    if (copy) {
      // The disks first (docs/migration.md, "Copying the storage"): every mirror READY before the memory moves.
      const progress = opts.progress;
      await env.withQmp(rec, async (q) => {
        await startMirrors(q, live, copy, target.host, label);
        await waitMirrorsReady(q, copy, progress && ((d, t) => progress('disk', d, t)), Date.now() + timeoutMs, opts.signal);
      });
      crashPoint('migrate-out:mirrored');
    }
    const sock = await connectStream(target.host, target.port, 10_000);
    const end = streamEnd(sock, label);
    try {
      await env.withQmp(rec, async (q) => {
        if (opts.live === false && !rec.paused) await q.execute('stop');
        await q.executeWithFds('getfd', { fdname: 'svirt-migrate' }, [end.fd]);
        await q.execute('migrate', { uri: 'fd:svirt-migrate' });
      });
    } catch (err) {
      end.abort();
      throw err;
    }
    end.handedOver(); // QEMU has its own copy of the fd; closing svirt's sends nothing
    crashPoint('migrate-out:streaming');
    const stats = await waitMigrated(env, rec, opts.progress, timeoutMs, opts.signal);
    // The guest is paused, both images the same (write-blocking mirrors): the jobs end, the source keeps its images.
    if (copy) await env.withQmp(rec, (q) => endMirrors(q, false));
    env.store.updateOp(rec.uuid, {
      ...op,
      migration: { ...(op.migration as NonNullable<PendingOp['migration']>), phase: 'migrated' },
    });
    crashPoint('migrate-out:migrated');
    return stats;
  } catch (err) {
    await resumeSource(env, { ...rec, pending: op }).catch((e: unknown) => {
      env.store.abandon(rec.uuid); // the next reconcile decides from the images
      env.warn(`${rec.name}: ${(e as Error).message}`);
    });
    throw err;
  }
}

/** QEMU's own figures of a completed stream (query-migrate): the whole stream, and the guest's pause at its end. */
export interface StreamStats {
  readonly totalMs: number;
  readonly downtimeMs: number;
  readonly bytes: number;
}

async function waitMigrated(
  env: LifecycleEnv,
  rec: RunningRecord,
  progress: MigrationProgress | undefined,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<StreamStats> {
  const deadline = Date.now() + timeoutMs;
  return env.withQmp(rec, async (q) => {
    for (;;) {
      const st = (await q.execute('query-migrate')) as {
        status?: string;
        'error-desc'?: string;
        'total-time'?: number;
        downtime?: number;
        ram?: { transferred?: number; total?: number };
      };
      progress?.(st.status ?? '', st.ram?.transferred ?? 0, st.ram?.total ?? 0);
      if (st.status === 'completed') {
        return { totalMs: st['total-time'] ?? 0, downtimeMs: st.downtime ?? 0, bytes: st.ram?.transferred ?? 0 };
      }
      if (st.status === 'failed' || st.status === 'cancelled') {
        throw new SvirtError('SVIRT_ERR_MIGRATE', `migrating '${rec.name}' failed: ${st['error-desc'] ?? st.status}`);
      }
      if (signal?.aborted === true) {
        await q.execute('migrate_cancel');
        throw new SvirtError('SVIRT_ERR_MIGRATE', `migrating '${rec.name}': the client that asked for it went away: cancelled`);
      }
      if (Date.now() > deadline) {
        await q.execute('migrate_cancel');
        throw new SvirtError(
          'SVIRT_ERR_TIMEOUT',
          `migrating '${rec.name}' did not finish within ${Math.round(timeoutMs / 1000)} s: cancelled`,
        );
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  });
}

/**
 * Confirm: the destination runs the guest (`cancelled` false): the source's QEMU ends, and
 * its files come back except the images the destination now holds. Or the migration failed
 * (`cancelled` true): the source resumes — unless the destination already took an image
 * (then it is the destination's guest, and the source ends).
 */
export async function migrateConfirm(
  env: LifecycleEnv,
  uuid: string,
  cancelled: boolean,
  opts: { unknown?: boolean } = {},
): Promise<'ended' | 'resumed' | 'held'> {
  const rec = env.store.getRunning(uuid);
  // A Perform that failed has resumed the guest already: a cancelled Confirm has nothing left to do.
  if (cancelled && rec !== undefined && rec.pending?.op !== 'migrate-out') return 'resumed';
  if (!rec?.pending || rec.pending.op !== 'migrate-out') {
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `guest ${uuid} is not being migrated from this host`);
  }
  const decision = decide(rec, opts.unknown === true ? 'unknown' : cancelled ? 'cancelled' : 'confirmed');
  if (decision === 'end') {
    setPhase(env, rec, 'confirmed'); // with copied disks, the only record that the destination runs the guest
    crashPoint('migrate-out:confirmed');
    await endSource(env, rec);
    return 'ended';
  }
  if (decision === 'hold') {
    env.store.endOp(uuid);
    env.warn(
      `${rec.name}: the migration's outcome is unknown here; the guest stays paused (resume it only if it runs nowhere else)`,
    );
    return 'held';
  }
  await resumeSource(env, rec);
  return 'resumed';
}

/** The reconcile's repair of a source whose migrating process died. */
export async function repairMigrationOut(env: LifecycleEnv, rec: RunningRecord): Promise<void> {
  const done = await env
    .withQmp(rec, async (q) => ((await q.execute('query-migrate')) as { status?: string }).status)
    .catch(() => undefined);
  // A stream that never completed cannot run anywhere else: resume. A completed one: the images decide.
  const decision = decide(rec, done === 'completed' ? 'unknown' : 'cancelled');
  if (decision === 'end') await endSource(env, rec);
  else if (decision === 'resume') await resumeSource(env, rec);
  else {
    env.store.endOp(rec.uuid);
    env.warn(`${rec.name}: its migration completed but nobody confirmed it; the guest stays paused here`);
  }
}

/** Cancels whatever QEMU still sends and lets the guest run as before. */
async function resumeSource(env: LifecycleEnv, rec: RunningRecord): Promise<void> {
  await env.withQmp(rec, async (q) => {
    const st = ((await q.execute('query-migrate')) as { status?: string }).status;
    if (st !== undefined && st !== 'completed' && st !== 'failed' && st !== 'cancelled') await q.execute('migrate_cancel');
    await endMirrors(q, true); // --copy-storage-all's mirrors and NBD connections, if any
    if (rec.pending?.wasRunning !== false) await q.execute('cont');
  });
  env.store.endOp(rec.uuid);
}

/** The destination holds the guest: the source's QEMU goes, and every file but the images comes back (stop.ts asks resourcesToRestore). */
async function endSource(env: LifecycleEnv, rec: RunningRecord): Promise<void> {
  if (!env.store.setRunState(rec.uuid, 'stopping', env.me)) {
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${rec.name}' is being stopped by another process`);
  }
  if (rec.pid && rec.pidStart) await env.kill({ pid: rec.pid, startTime: rec.pidStart });
  crashPoint('migrate-out:killed');
  await cleanup(env, rec);
}
