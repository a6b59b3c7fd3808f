import { existsSync } from 'node:fs';
import { parseDomainXml } from '../domain/index.js';
import { isAlive } from '../host/proc.js';
import type { RunningCheck, RunningRecord } from '../store/store.js';
import type { LifecycleEnv } from './env.js';
import { holdOrphans } from './orphans.js';

/** Drivers whose labels are exclusive (reserved in the store). */
const RESERVING: ReadonlySet<string> = new Set(['dac', 'selinux', 'apparmor']);

/**
 * Every command starts here: a record whose QEMU is gone, or whose owner (a svirt process
 * that was starting or stopping it) died, is brought to a clean stop; an operation whose
 * owner died is finished or undone. Returns what it cleaned, for `svirt reconcile`.
 * The repairs and the cleanup are imported when needed: most commands find nothing to do.
 * Each is imported before the store is touched for it (the take-over, the claim): the read
 * verbs' bundle leaves them out, and a verb of that bundle that reaches one stops there and
 * runs again in the full bundle (src/cli/main-read.ts), so it must not have changed anything yet.
 */
export async function reconcile(env: LifecycleEnv): Promise<string[]> {
  const cleaned: string[] = [];
  const checks = env.store.runningChecks();
  let worked = false;
  for (const check of checks) {
    if (settled(check)) continue;
    // Work to do: on the whole record, read again (it may have changed since the check).
    const rec = env.store.getRunning(check.uuid);
    if (rec) await reconcileOne(env, rec, check.reserved === 1, cleaned);
    worked = true;
  }
  // The records as checked, unless some were worked on (a cleanup removes its record).
  const known = worked ? env.store.runningUuids() : new Set(checks.map((c) => c.uuid));
  for (const o of holdOrphans(env, known)) {
    env.warn(
      `QEMU pid ${o.pid} (guest ${o.uuid}, uid ${o.uid}${o.level ? `, level ${o.level}` : ''}) runs from this state dir ` +
        'but the store has no record of it (was the store deleted or replaced?): its labels stay reserved until it exits; ' +
        'its files keep its owner and labels',
    );
  }
  return cleaned;
}

/** Whether a record needs nothing: QEMU runs, its labels are reserved, no operation's owner died. */
function settled(c: RunningCheck): boolean {
  if (c.state !== 'running' || !(c.pid && c.pidStart && isAlive({ pid: c.pid, startTime: c.pidStart }))) return false;
  if (c.reserved === 0 && needsReservations(JSON.parse(c.stack) as readonly string[])) return false;
  return c.pending === 0 || ownerAlive(c);
}

function needsReservations(stack: readonly string[]): boolean {
  return stack.some((d) => RESERVING.has(d));
}

function ownerAlive(rec: Pick<RunningRecord, 'ownerPid' | 'ownerStart'>): boolean {
  return rec.ownerPid && rec.ownerStart ? isAlive({ pid: rec.ownerPid, startTime: rec.ownerStart }) : false;
}

async function reconcileOne(env: LifecycleEnv, rec: RunningRecord, reserved: boolean, cleaned: string[]): Promise<void> {
  const qemu = rec.pid && rec.pidStart ? { pid: rec.pid, startTime: rec.pidStart } : undefined;
  const owner = ownerAlive(rec);
  if (rec.state === 'running' && qemu && isAlive(qemu)) {
    if (!reserved && needsReservations(rec.stack)) await reserveAgain(env, rec);
    if (rec.pending && !owner) {
      // The repair's code is loaded before the operation is taken over (see the note above).
      const repair = await repairOf(rec.pending);
      if (!env.store.takeOverOp(rec.uuid, rec.ownerPid, env.me)) return;
      try {
        await repair(env, rec);
        cleaned.push(`${rec.name} (${rec.pending.op} repaired)`);
      } catch (err) {
        env.store.abandon(rec.uuid);
        env.warn(`cannot repair the ${rec.pending.op} of guest '${rec.name}' yet: ${(err as Error).message}`);
      }
    }
    return;
  }
  if (rec.state !== 'running' && owner) return;
  const [{ cleanup }, quit] = await Promise.all([import('./reconcile-steps.js'), qemu ? undefined : quitOf()]);
  const claimed = env.store.tx(() => {
    const now = env.store.getRunning(rec.uuid);
    if (!now || now.ownerPid !== rec.ownerPid || now.state !== rec.state) return false; // someone else took it
    return env.store.setRunState(rec.uuid, 'stopping', env.me);
  });
  if (!claimed) return;
  try {
    if (qemu) await env.kill(qemu);
    else if (quit) await quit(rec);
    await cleanup(env, rec);
    cleaned.push(rec.name);
  } catch (err) {
    env.store.abandon(rec.uuid);
    env.warn(`cannot clean up guest '${rec.name}' yet: ${(err as Error).message}`);
  }
}

/**
 * A running guest whose reservations are gone (a store restored from backup, a table
 * emptied by hand) takes its labels again, so no new guest can be given them. A label
 * someone else took meanwhile is a collision: reported, the guest keeps running.
 */
async function reserveAgain(env: LifecycleEnv, rec: RunningRecord): Promise<void> {
  const live = parseDomainXml(rec.liveXml);
  const manager = await env.managerFor(rec);
  if (!manager.hasLiveLabels(live)) return;
  try {
    manager.reserveLabels(live, env.context(live, rec.runtimeDir));
  } catch (err) {
    env.warn(`guest '${rec.name}' runs with a label another guest holds: ${(err as Error).message}`);
  }
}

type Repair = (env: LifecycleEnv, rec: RunningRecord) => Promise<void>;

/** The repair of an operation whose owner died, loaded. */
async function repairOf(pending: NonNullable<RunningRecord['pending']>): Promise<Repair> {
  if (pending.op.startsWith('migrate-')) return (await import('./migrate/repair.js')).repairMigration;
  if (pending.op === 'snapshot') return (await import('./snapshots/snapshot-live-repair.js')).repairLive;
  const steps = await import('./reconcile-steps.js');
  if (pending.op === 'save') return steps.repairSave;
  return pending.netdev !== undefined ? steps.repairNicOp : steps.repairOp;
}

/** For a start that crashed before recording QEMU's pid: asks whatever serves its monitor socket to quit. */
async function quitOf(): Promise<(rec: RunningRecord) => Promise<void>> {
  const { QmpClient } = await import('../qemu/qmp-client.js');
  return async (rec) => {
    if (!existsSync(rec.qmpPath)) return;
    try {
      const q = await QmpClient.connect(rec.qmpPath, 1000);
      await q.execute('quit').catch(() => undefined); // QEMU closes the socket as it quits
      q.close();
    } catch {
      // Nobody listens: no QEMU of this start is alive.
    }
  };
}
