/**
 * Guests the store does not know: QEMUs started from this state dir whose records were lost
 * (the store deleted, emptied or restored from an old backup). Their processes still hold
 * labels — a uid, an MCS pair — that the store would otherwise hand to a new guest. They
 * are found by what svirt leaves on the host (a runtime dir or monitor socket named by the
 * uuid, a cgroup journal, a QEMU with that `-uuid`), their labels are reserved under their
 * uuid, and every command says so until they are gone; then their traces go.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { basename, join } from 'node:path';
import { processStatus } from '../host/proc.js';
import { removeExitedCgroup } from './cgroup/remove.js';
import type { LifecycleEnv } from './env.js';
import { removeFile, removeTree } from '../host/files.js';
import { isCanonicalUuid } from '../host/uuid.js';

export interface Orphan {
  readonly uuid: string;
  readonly pid: number;
  readonly uid: number;
  /** The MCS level its process runs at, where SELinux runs. */
  readonly level?: string;
}

/** uuids that have a runtime dir, a monitor socket or a cgroup journal but no running record. */
function traces(env: LifecycleEnv, known: ReadonlySet<string>): Set<string> {
  const root = env.paths.runtimeRoot;
  const found = new Set<string>();
  const list = (dir: string): string[] => {
    if (!existsSync(dir)) return []; // nothing ever ran here: no thrown ENOENT on every verb (issue 17)
    try {
      return readdirSync(dir);
    } catch {
      return []; // no runtime root yet: nothing ever ran here
    }
  };
  // A name is a known guest's far more often than not (one of each per running guest): that test first.
  const add = (uuid: string): void => {
    if (!known.has(uuid) && isCanonicalUuid(uuid)) found.add(uuid);
  };
  for (const n of list(root)) add(n);
  for (const n of list(join(root, 'monitor'))) if (n.endsWith('.sock')) add(n.slice(0, -5));
  for (const n of list(join(env.paths.stateDir, 'cgroups'))) if (n.endsWith('.json')) add(n.slice(0, -5));
  return found;
}

/**
 * The QEMU processes whose `-uuid` is one of `uuids` and that were started from this state dir
 * (scans /proc only when there are some). Another state dir on the same machine may run the
 * same guest (the two ends of a migration, docs/migration.md): its QEMU writes its stderr to
 * that state dir's log, not to ours.
 */
function qemusOf(uuids: ReadonlySet<string>, stateDir: string): Orphan[] {
  const out: Orphan[] = [];
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return out; // no /proc: nothing can be found (and nothing can be confined either)
  }
  for (const p of pids) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    if (!basename(argv[0] ?? '').startsWith('qemu-system')) continue;
    const uuid = argv[argv.indexOf('-uuid') + 1];
    if (argv.indexOf('-uuid') < 0 || uuid === undefined || !uuids.has(uuid)) continue;
    if (!startedFrom(Number(p), stateDir)) continue;
    const uid = Number(processStatus(Number(p))?.get('Uid')?.split(/\s+/)[0] ?? NaN);
    if (!Number.isInteger(uid)) continue;
    let level: string | undefined;
    try {
      const ctx = readFileSync(`/proc/${p}/attr/current`, 'utf8').replace(/\0+$/, '').trim();
      level = ctx.split(':').length > 3 ? ctx.split(':').slice(3).join(':') : undefined;
    } catch {
      level = undefined; // no LSM attributes here
    }
    out.push({ uuid, pid: Number(p), uid, ...(level ? { level } : {}) });
  }
  return out;
}

/** Whether QEMU `pid` logs into `stateDir` (its stderr, opened by the svirt that started it); unknown counts as yes. */
function startedFrom(pid: number, stateDir: string): boolean {
  try {
    const log = readlinkSync(`/proc/${pid}/fd/2`);
    return log.startsWith(`${stateDir}/`) || log.startsWith(`${realpathSync(stateDir)}/`);
  } catch {
    return true; // cannot tell (gone, or not ours to read): keep its labels held, the safe side
  }
}

/**
 * Finds orphans, reserves their labels under their uuid (so no new guest gets them), and
 * releases the reservations of orphans that are gone, removing their runtime traces.
 * Returns the live orphans; the caller says so loudly. `known`: the uuids of the running
 * records, as the caller read them.
 */
export function holdOrphans(env: LifecycleEnv, known: ReadonlySet<string>): Orphan[] {
  const candidates = traces(env, known);
  for (const u of env.store.reservedNotRunning()) candidates.add(u);
  if (candidates.size === 0) return [];
  const live = qemusOf(candidates, env.paths.stateDir);
  const alive = new Set(live.map((o) => o.uuid));
  env.store.tx(() => {
    for (const o of live) {
      if (env.store.getRunning(o.uuid)) continue; // a start that raced this scan: not an orphan
      // The store is the only authority on labels: what an orphan holds is taken out of it.
      if (o.uid !== 0) env.store.tryReserve('dac', String(o.uid), o.uuid);
      if (o.level && o.level !== 's0') env.store.tryReserve('selinux', o.level, o.uuid);
      env.store.tryReserve('apparmor', `svirt-${o.uuid}`, o.uuid);
    }
    for (const u of candidates) {
      if (alive.has(u) || env.store.getRunning(u)) continue;
      env.store.releaseReservations(u);
      // In the transaction: no start can claim u, and journal a new cgroup for it, meanwhile.
      removeCgroupOf(env, u);
    }
  });
  for (const u of candidates) {
    if (alive.has(u) || env.store.getRunning(u)) continue;
    // Traces of an orphan that has exited: svirt's own dir and socket, nothing of the guest's.
    // Every command runs this: a trace it cannot remove is said, not thrown, and tried again.
    try {
      removeTree(join(env.paths.runtimeRoot, u));
      removeFile(join(env.paths.runtimeRoot, 'monitor', `${u}.sock`));
    } catch (err) {
      env.warn(
        `the runtime traces of guest ${u}, which has exited, could not be removed: ${err instanceof Error ? err.message : String(err)} (the next command tries again)`,
      );
    }
  }
  return live.filter((o) => !env.store.getRunning(o.uuid));
}

/** An exited orphan's cgroup: its empty directories go; one still busy is said, and tried again by the next command. */
function removeCgroupOf(env: LifecycleEnv, uuid: string): void {
  try {
    const left = removeExitedCgroup(env.paths.stateDir, uuid);
    if (left.length > 0)
      env.warn(
        `the cgroup of guest ${uuid}, which has exited, still has processes or cgroups in it: ${left.join(', ')} left alone`,
      );
  } catch (err) {
    // A journal that cannot be read names nothing svirt may remove; every other guest goes on.
    env.warn(`cannot remove the cgroup of guest ${uuid}, which has exited: ${(err as Error).message}`);
  }
}
