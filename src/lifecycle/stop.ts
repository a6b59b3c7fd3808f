import { parseDomainXml } from '../domain/index.js';
import { SvirtError } from '../errors.js';
import { unlinkBeneath } from '../host/file-handle.js';
import { isAlive, signal, waitGone } from '../host/proc.js';
import type { RunningRecord } from '../store/store.js';
import { removeConsoleLocks } from './console-session.js';
import { crashPoint } from './crash-points.js';
import type { LifecycleEnv } from './env.js';
import { noDomain, notRunning } from './guest.js';
import { endHelpers } from './helper-end.js';
import { releaseNics } from './nic-release.js';
import { removeTransientTpmState } from './tpm-state.js';
import { removeFile, removeTree } from '../host/files.js';

/** `destroy`: SIGTERM, then SIGKILL after a grace period; labels restored; nothing left. */
export async function destroyGuest(env: LifecycleEnv, name: string, graceMs = 3000): Promise<void> {
  const rec = claimForStop(env, name);
  crashPoint('destroy:claimed');
  try {
    if (rec.pid && rec.pidStart) await env.kill({ pid: rec.pid, startTime: rec.pidStart }, graceMs);
    crashPoint('destroy:killed');
    await cleanup(env, rec);
  } catch (err) {
    // Whatever is left (a label that would not restore) is the next reconcile's to retry.
    env.store.abandon(rec.uuid);
    throw err;
  }
}

/**
 * `shutdown`: asks the guest to power off (ACPI, or SIGTERM with mode 'signal' which QEMU
 * handles as a clean exit) and waits for it; the cleanup is the caller's reconcile.
 */
export async function requestShutdown(
  env: LifecycleEnv,
  rec: RunningRecord,
  opts: { mode?: 'acpi' | 'signal'; timeoutMs?: number },
): Promise<boolean> {
  if (!rec.pid || !rec.pidStart) throw notRunning(rec.name);
  const id = { pid: rec.pid, startTime: rec.pidStart };
  if ((opts.mode ?? 'acpi') === 'signal') signal(id.pid, 'SIGTERM');
  else await env.withQmp(rec, (q) => q.execute('system_powerdown'));
  crashPoint('shutdown:requested');
  if (opts.timeoutMs === 0) return false;
  return waitGone(id, opts.timeoutMs ?? 60_000);
}

/** Claims a running guest for stopping (state → stopping, owned by this process). */
function claimForStop(env: LifecycleEnv, name: string): RunningRecord {
  return env.store.tx(() => {
    const rec = env.store.getRunningByName(name) ?? env.store.getRunning(name.toLowerCase());
    if (!rec) {
      if (env.store.getDefinedByName(name) ?? env.store.getDefinedByUuid(name.toLowerCase())) throw notRunning(name);
      throw noDomain(name);
    }
    const busy =
      rec.state !== 'running' && rec.ownerPid && rec.ownerStart && isAlive({ pid: rec.ownerPid, startTime: rec.ownerStart });
    if (busy)
      throw new SvirtError(
        'SVIRT_ERR_OPERATION_INVALID',
        `domain '${rec.name}' is being ${rec.state === 'starting' ? 'started' : 'stopped'} by process ${rec.ownerPid}`,
      );
    env.store.setRunState(rec.uuid, 'stopping', env.me);
    return { ...rec, state: 'stopping' };
  });
}

/**
 * The end of every stop: end the guest's helper processes, restore labels (only on files
 * that are still the ones labelled), release reservations, remove the runtime dir, the
 * monitor socket and the record.
 */
export async function cleanup(env: LifecycleEnv, rec: RunningRecord): Promise<void> {
  // Helpers hold the guest's files open and run under its labels: they go before the files come back.
  await endHelpers(env, rec.uuid);
  const live = parseDomainXml(rec.liveXml);
  const manager = await env.managerFor(rec);
  const ctx = env.context(live, rec.runtimeDir);
  // A migrating source whose images the destination took keeps its hands off them (migrate/source.ts).
  // A live snapshot cut short also gives back its overlays' labels (snapshots/snapshot-live.ts).
  const resources =
    rec.pending?.op === 'migrate-out'
      ? (await import('./migrate/restore-set.js')).resourcesToRestore(env, rec)
      : rec.pending?.op === 'snapshot'
        ? [...rec.resources, ...(rec.pending.resources ?? [])]
        : rec.resources;
  // Labels are journalled before any file is touched: no labels or no resources, nothing was labelled.
  if (resources.length > 0 && manager.hasLiveLabels(live)) await manager.restoreAllLabel(live, resources, ctx);
  crashPoint('cleanup:restored');
  // Nothing of the guest runs any more: its cgroup goes (a process left in it is killed first)
  await (await import('./cgroup/remove.js')).removeGuestCgroup(env.paths.stateDir, rec.uuid);
  // The taps go with QEMU's fds, unless QEMU made them persistent: each is removed by its record.
  await releaseNics(env, rec.uuid);
  removeTransientTpmState(env, live, rec.persistent);
  env.store.tx(() => {
    env.store.releaseReservations(rec.uuid);
    env.store.deleteRunning(rec.uuid);
  });
  removeTree(rec.runtimeDir);
  removeFile(rec.qmpPath);
  removeConsoleLocks(env, rec.uuid);
  // Sockets svirt bound for the guest's chardevs go with it (QEMU got only their fds).
  for (const c of live.chardevs) {
    if (c.type === 'unix' && c.mode !== 'connect' && c.path !== undefined) {
      const r = resources.find((x) => x.role === 'chardev' && (x.declared === c.path || x.path === c.path));
      if (r) unlinkBeneath(r.path, 'remove a socket in', (st) => st.isSocket());
    }
  }
}
