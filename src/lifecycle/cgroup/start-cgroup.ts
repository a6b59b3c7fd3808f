/**
 * The start's cgroup step (loaded lazily by start.ts), in two parts:
 * - right after the claim, the guest's cgroup is planned, journalled and made, empty; where it
 *   has a cgroup2 dir, that also starts the kernel's grace period for the join in the
 *   background (primeJoin) while the start resolves, opens and labels the guest's files;
 * - once those files are known, `fill` writes the limits and the device list.
 * svirt-exec joins the directories before it execs QEMU or a helper. Nothing is made when
 * svirt makes no cgroups (not root, or SVIRT_CGROUP=off).
 */
import type { DomainDef } from '../../domain/domain-def.js';
import { hasTuning, parseTune } from '../../domain/tune.js';
import { SvirtError } from '../../errors.js';
import { svirtExecPath } from '../../host/native.js';
import { spawnProgram } from '../../host/spawn.js';
import type { GuestResource } from '../../security/driver.js';
import { crashPoint, type CrashPoint } from '../crash-points.js';
import type { UndoStack } from '../undo.js';
import { cgroupsWanted, fillGuestCgroup, makeGuestCgroupDirs, planGuestCgroup, type CgroupPlan } from './guest-cgroup.js';
import { hostLayout } from './layout.js';
import { removeGuestCgroup } from './remove.js';

export interface StartedCgroup {
  /** The directories svirt-exec joins (none without a cgroup). */
  readonly dirs: readonly string[];
  /** Writes the limits and the device list for the guest's opened files. */
  fill(resources: readonly GuestResource[]): void;
}

const NONE: StartedCgroup = { dirs: [], fill: () => undefined };

export function startCgroup(stateDir: string, def: DomainDef, stack: readonly string[], undo: UndoStack): StartedCgroup {
  if (!cgroupsWanted()) return NONE;
  const layout = hostLayout();
  if (layout.kind === 'none') {
    // No cgroup file system in svirt's mount namespace (`ip netns exec` remounts /sys): as
    // libvirt does, the guest runs without a cgroup (profile says so), unless its definition
    // asks for limits: those are never dropped (fail closed).
    if (hasTuning(parseTune(def.source))) {
      throw new SvirtError(
        'SVIRT_ERR_CGROUP',
        `domain '${def.name}' asks for <memtune>, <cputune> or <blkiotune>, but no cgroup file system is mounted where svirt runs`,
      );
    }
    return NONE;
  }
  // The device list is confinement: the `none` stack confines nothing, so it gets limits only.
  const confined = stack.some((d) => d !== 'none');
  const plan = planGuestCgroup(def, [], confined, layout);
  undo.push("remove the guest's cgroup", () => removeGuestCgroup(stateDir, def.uuid));
  makeGuestCgroupDirs(stateDir, plan, (p) => crashPoint(p as CrashPoint));
  const v2 = plan.dirs.find((d) => d.version === 2);
  if (v2) primeJoin(v2.dir);
  return {
    dirs: plan.dirs.map((d) => d.dir),
    fill: (resources) => fillGuestCgroup(stateDir, samePlan(plan, planGuestCgroup(def, resources, confined, layout))),
  };
}

/** The plan with the files' device rules, whose directories must be those already made. */
function samePlan(made: CgroupPlan, plan: CgroupPlan): CgroupPlan {
  if (plan.dirs.map((d) => d.dir).join('\n') !== made.dirs.map((d) => d.dir).join('\n'))
    throw new SvirtError('SVIRT_ERR_INTERNAL', "the guest's cgroup plan changed between its directories and its settings");
  return plan;
}

/**
 * Starts, in the background, the kernel's wait that svirt-exec's join of the guest's cgroup2
 * dir would otherwise have on the start's critical path: a throwaway `svirt-exec --join-cgroup`
 * joins the (still empty) cgroup and exits.
 *
 * Moving a process into a cgroup2 takes the kernel's cgroup_threadgroup_rwsem for writing; a
 * writer first switches the lock's readers to their slow path, which waits for an RCU grace
 * period (rcu_sync_enter): 5–20 ms on this machine kind (measured on its v1 hierarchies, before
 * svirt-exec moved threads there), for the first join of every start.
 * (Spawned without a fork of svirt, src/host/spawn.ts: a fork here cost as much as it saved.)
 * The switch stays on until one more grace period after the last writer, so the real join a
 * few to ~20 ms later finds it passed (measured: about 0.1 ms). If the start takes longer, the
 * join waits as before: nothing depends on this but the time.
 *
 * Every fork and exec on the host waits for the grace period too. svirt-exec joins a v1
 * hierarchy by moving its one thread, which does not take the lock (native/svirt-exec.c), so
 * v1 dirs are not primed: there the primer's wait only held up the monitor's spawn.
 */
function primeJoin(dir: string): void {
  try {
    spawnProgram(svirtExecPath(), { args: ['--join-cgroup', dir], fds: ['ignore', 'ignore', 'ignore'], env: {} });
  } catch {
    // the real join reports any failure
  }
}
