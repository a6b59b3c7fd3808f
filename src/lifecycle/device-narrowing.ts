import { SvirtError } from '../errors.js';
import { selfAppArmorProfile } from '../security/apparmor/apparmor-kernel.js';
import type { RunningRecord } from '../store/store.js';

/**
 * Under a manager confined by AppArmor, a guest's QEMU runs under its profile stacked on the
 * manager's (svirt-exec: no_new_privs forbids leaving svirt-manager), and the enforcement lab
 * found that replacing the guest's profile then does not take a file out of its reach. Until
 * that is understood, removing a disk or medium from such a running guest is refused: the
 * guest would keep the file while svirt said it was gone (fail closed; docs/confinement.md).
 */
export function refuseNarrowing(rec: RunningRecord, name: string, target: string): void {
  if (!rec.stack.includes('apparmor')) return;
  const profile = selfAppArmorProfile();
  if (profile === undefined) return;
  throw new SvirtError(
    'SVIRT_ERR_CONFINE',
    `cannot take ${target} out of '${name}' while it runs: svirt runs confined by AppArmor (${profile}), and the ` +
      "guest's stacked profile is not narrowed while it runs (docs/confinement.md); use --config, or stop the guest",
  );
}
