/**
 * How a guest's monitor tells `svirt serve` that QEMU exited (svirt-monitor `--notify`), so
 * the cleanup needs no Node start: where the socket is, and when the cleanup counts as done.
 * The listener itself is serve's (src/remote/exit-notify-listener.ts).
 */
import { join } from 'node:path';
import type { StatePaths } from '../host/paths.js';
import { isAlive } from '../host/proc.js';
import type { LifecycleEnv } from './env.js';

/** The notify socket's file name, in the root-only monitor dir of the runtime root. */
export const NOTIFY_SOCKET_NAME = 'notify.sock';

/**
 * The socket `svirt serve` listens on for its state dir's monitors: beside the QMP sockets in
 * `<runtime root>/monitor/` (0700, svirt's user only), one per state dir.
 */
export function notifySocketPath(paths: StatePaths): string {
  return join(paths.runtimeRoot, 'monitor', NOTIFY_SOCKET_NAME);
}

/**
 * After a reconcile: is the QEMU that had `pid` cleaned up, or in the hands of a live svirt
 * process that is stopping or starting it? False when its record is still there with nobody
 * on it (a cleanup that failed and was abandoned): the monitor's hook then tries again.
 */
export function exitSettled(env: LifecycleEnv, pid: number): boolean {
  for (const rec of env.store.listRunning()) {
    if (rec.pid !== pid) continue;
    // This record's QEMU still runs: the process that exited was another one (or none).
    if (rec.pidStart && isAlive({ pid, startTime: rec.pidStart })) continue;
    const owner = rec.ownerPid && rec.ownerStart ? { pid: rec.ownerPid, startTime: rec.ownerStart } : undefined;
    if (rec.state !== 'running' && owner && isAlive(owner)) continue;
    return false;
  }
  return true;
}
