/**
 * A helper process: a program svirt runs beside a guest's QEMU for one of its devices
 * (swtpm for a TPM, virtiofsd for a shared folder, passt for user networking). It runs
 * under the guest's confinement: each security driver says what the helper gets from what
 * the device declares here (see SecurityDriver.helperConfinement), and a driver that cannot
 * confine a kind refuses it, so the device is refused.
 */
import { SvirtError } from '../errors.js';

/** The programs svirt knows how to confine. */
export type HelperKind = 'passt' | 'swtpm' | 'swtpm-setup' | 'virtiofsd';

/**
 * How a helper uses one path. Drivers turn each into their own rule (a Landlock rule, an
 * AppArmor rule); dac and selinux grant nothing per path (the files are the guest's by owner
 * and label, see the device's resources).
 */
export type HelperPathAccess =
  | 'read' // read one file
  | 'write' // read and write one file (no create)
  | 'exec' // a program the helper runs (swtpm_setup runs swtpm)
  | 'tree-read' // a directory and everything beneath it, read-only
  | 'tree-write' // a directory and everything beneath it: create, write, remove
  | 'create-in'; // create, use and remove its own files in a shared dir such as /tmp (nothing else there)

export interface HelperPath {
  readonly path: string;
  readonly access: HelperPathAccess;
  /** A missing path is skipped instead of failing the launch. */
  readonly optional?: boolean;
}

/** What a driver needs to know to confine one helper. */
export interface HelperSpec {
  readonly kind: HelperKind;
  /** Unique within the guest, `[a-z0-9-]{1,32}` (e.g. `tpm0`, `fs0`, `net0`): names its log and profile. */
  readonly id: string;
  /** The program (absolute, resolved): what it may execute. */
  readonly binary: string;
  /** Every path it may reach besides its own code, libraries and /dev/null. */
  readonly paths: readonly HelperPath[];
  /**
   * Root inside a user namespace that maps root to the guest's uid (svirt-exec's userRoot):
   * virtiofsd's own sandbox needs chroot and namespaces, which the guest uid lacks. It holds
   * no capability outside that namespace.
   */
  readonly userRoot?: boolean;
  /** Its log, which svirt opens and the helper inherits as stdout/stderr (AppArmor checks it again at exec). */
  readonly log?: string;
  /**
   * The program isolates itself with namespaces and mounts (passt: a user and mount namespace
   * with an empty root, then seccomp). The kernel forbids mount and pivot_root to a Landlock
   * domain that handles any filesystem access, so the landlock driver gives it a ruleset that
   * handles none (its own sandbox confines its files): TCP and the scopes only.
   */
  readonly sandboxesItself?: boolean;
  /**
   * TCP ports it may bind and connect to (passt port forwards); none by default. `connectAny`:
   * it connects wherever its guest does (passt relays the guest's own connections).
   */
  readonly tcp?: { readonly bind?: readonly number[]; readonly connect?: readonly number[]; readonly connectAny?: boolean };
}

const ID = /^[a-z0-9][a-z0-9-]{0,31}$/u;

/** Throws when an id cannot name a log file and a profile safely. */
export function assertHelperId(id: string): void {
  if (!ID.test(id)) throw new SvirtError('SVIRT_ERR_INTERNAL', `helper id ${JSON.stringify(id)} is not [a-z0-9-]{1,32}`);
}
