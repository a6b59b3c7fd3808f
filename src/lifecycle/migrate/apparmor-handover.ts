/**
 * AppArmor's part of the handover (docs/migration.md). Nothing on the image changes hands:
 * each host's kernel confines its own QEMU by its own profile `svirt-<uuid>`, which names the
 * image by path. The destination's profile is written and loaded at Prepare with every file
 * of the guest, the handed-over images too, so it allows the image before its QEMU gets it (at
 * Finish); the source's profile keeps it until Confirm ends the source's QEMU and withdraws
 * the profile. That holds only with two kernels: on one kernel both ends would load the same
 * profile name (the destination's replacing the source's rules under the running source, and
 * the source's Confirm unloading the destination's). That is refused here, before anything.
 */
import type { DomainDef } from '../../domain/domain-def.js';
import { SvirtError } from '../../errors.js';
import { kernelProfileLoaded, kernelRunsAppArmor } from '../../security/apparmor/apparmor-kernel.js';
import { PROFILE_PREFIX } from '../../security/apparmor/apparmor-template.js';
import type { DriverName } from '../../security/driver.js';

/** Refuses an incoming guest whose dynamic profile this kernel already has loaded (its source runs on this kernel). */
export function assertProfileFree(def: DomainDef, stack: readonly DriverName[]): void {
  if (!stack.includes('apparmor') || !kernelRunsAppArmor()) return; // compile-only: no kernel profile to share
  const own = def.seclabels.find((s) => s.model === 'apparmor') ?? def.seclabels.find((s) => s.model === undefined);
  if (own?.type === 'static' || own?.type === 'none') return; // the administrator's profile, or none
  const name = `${PROFILE_PREFIX}${def.uuid}`;
  if (kernelProfileLoaded(name)) {
    throw new SvirtError(
      'SVIRT_ERR_MIGRATE',
      `the AppArmor profile ${name} is loaded on this kernel already (the source runs here?): a migration under AppArmor needs two kernels`,
    );
  }
}
