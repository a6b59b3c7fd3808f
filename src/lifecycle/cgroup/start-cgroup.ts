/**
 * The start's cgroup step (loaded lazily by start.ts): plan, journal and make the guest's
 * cgroup, and push its removal on the undo stack. Returns the dirs svirt-exec joins (none
 * when svirt makes no cgroups: not root, or SVIRT_CGROUP=off).
 */
import type { DomainDef } from '../../domain/domain-def.js';
import { hasTuning, parseTune } from '../../domain/tune.js';
import { SvirtError } from '../../errors.js';
import type { GuestResource } from '../../security/driver.js';
import { crashPoint, type CrashPoint } from '../crash-points.js';
import type { UndoStack } from '../undo.js';
import { cgroupsWanted, makeGuestCgroup, planGuestCgroup } from './guest-cgroup.js';
import { hostLayout } from './layout.js';
import { removeGuestCgroup } from './remove.js';

export function startCgroup(
  stateDir: string,
  live: DomainDef,
  resources: readonly GuestResource[],
  stack: readonly string[],
  undo: UndoStack,
): string[] {
  if (!cgroupsWanted()) return [];
  const layout = hostLayout();
  if (layout.kind === 'none') {
    // No cgroup file system in svirt's mount namespace (`ip netns exec` remounts /sys): as
    // libvirt does, the guest runs without a cgroup (profile says so), unless its definition
    // asks for limits: those are never dropped (fail closed).
    if (hasTuning(parseTune(live.source))) {
      throw new SvirtError(
        'SVIRT_ERR_CGROUP',
        `domain '${live.name}' asks for <memtune>, <cputune> or <blkiotune>, but no cgroup file system is mounted where svirt runs`,
      );
    }
    return [];
  }
  // The device list is confinement: the `none` stack confines nothing, so it gets limits only.
  const plan = planGuestCgroup(
    live,
    resources,
    stack.some((d) => d !== 'none'),
  );
  undo.push("remove the guest's cgroup", () => removeGuestCgroup(stateDir, live.uuid));
  makeGuestCgroup(stateDir, plan, (p) => crashPoint(p as CrashPoint));
  return plan.dirs.map((d) => d.dir);
}
