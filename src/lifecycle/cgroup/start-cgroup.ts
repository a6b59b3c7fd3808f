/**
 * The start's cgroup step (loaded lazily by start.ts), in two parts:
 * - right after the claim, the guest's cgroup is planned, journalled and made, empty;
 * - once those files are known, `fill` writes the limits and the device list.
 * svirt-exec joins the directories before it execs QEMU or a helper; QEMU's svirt-exec is
 * created inside the cgroup2 dir, if there is one, by svirt-monitor (`cgroup2`, docs/cgroups.md).
 * Nothing is made when svirt makes no cgroups (not root, or SVIRT_CGROUP=off).
 */
import type { DomainDef } from '../../domain/domain-def.js';
import { hasTuning, parseTune } from '../../domain/tune.js';
import { SvirtError } from '../../errors.js';
import type { GuestResource } from '../../security/driver.js';
import { crashPoint, type CrashPoint } from '../crash-points.js';
import type { UndoStack } from '../undo.js';
import { cgroupsWanted, fillGuestCgroup, makeGuestCgroupDirs, planGuestCgroup, type CgroupPlan } from './guest-cgroup.js';
import { hostLayout } from './layout.js';
import { removeGuestCgroup } from './remove.js';

export interface StartedCgroup {
  /** The directories svirt-exec joins (none without a cgroup). */
  readonly dirs: readonly string[];
  /** The cgroup2 dir among them, which svirt-monitor creates QEMU's child in. */
  readonly cgroup2?: string;
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
  return {
    dirs: plan.dirs.map((d) => d.dir),
    ...(v2 ? { cgroup2: v2.dir } : {}),
    fill: (resources) => fillGuestCgroup(stateDir, samePlan(plan, planGuestCgroup(def, resources, confined, layout))),
  };
}

/** The plan with the files' device rules, whose directories must be those already made. */
function samePlan(made: CgroupPlan, plan: CgroupPlan): CgroupPlan {
  if (plan.dirs.map((d) => d.dir).join('\n') !== made.dirs.map((d) => d.dir).join('\n'))
    throw new SvirtError('SVIRT_ERR_INTERNAL', "the guest's cgroup plan changed between its directories and its settings");
  return plan;
}
