import type { ChardevDef, DeviceSecLabelDef, DiskDef, DomainDef, SecLabelDef } from '../domain/domain-def.js';
import type { FileHandle, FileIdentity } from '../host/file-handle.js';
import type { ConfinementPart } from './confinement.js';
import type { HelperSpec } from './helper.js';

/** The names a driver can have; also the `model` of its `<seclabel>`. */
export type DriverName = 'none' | 'dac' | 'landlock' | 'selinux' | 'apparmor';

/** "Not available here" is a result, not an exception. */
export type ProbeResult =
  { readonly status: 'enable'; readonly notes?: readonly string[] } | { readonly status: 'disable'; readonly reason: string };

/** A `<baselabel type=...>` line of `capabilities`. */
export interface BaseLabel {
  readonly virtType: 'kvm' | 'qemu';
  readonly label: string;
}

/**
 * Why a file is given to a guest. The manager enumerates these once from the domain
 * (see resources.ts); each driver maps a role to its own label.
 */
export type ResourceRole =
  | 'disk' // writable image, private to the guest
  | 'disk-readonly' // read-only disk or CD-ROM medium
  | 'disk-shareable' // writable, shared with other guests
  | 'backing' // a layer of a declared qcow2 backing chain
  | 'kernel'
  | 'initrd'
  | 'dtb'
  | 'loader'
  | 'nvram'
  | 'chardev' // serial/console file or UNIX socket
  | 'log' // QEMU's stderr log: svirt's file, written through an inherited fd
  | 'runtime-dir' // the guest's private runtime dir (QMP socket, log)
  | 'saved-state' // a save/restore state file
  | 'helper-log' // a helper process's log: svirt's file, written through an inherited fd (QEMU gets nothing)
  | 'tpm-state' // the guest's swtpm state dir and its files (swtpm's, not QEMU's)
  | 'shared-dir' // a <filesystem> source dir, served by the guest's virtiofsd (not by QEMU)
  | 'shared-dir-readonly'; // the same with <readonly/>: read through its own permissions, never handed over

export interface GuestResource {
  /** The resolved path (symlinks followed): what drivers label. */
  readonly path: string;
  /** The path as the domain wrote it, when it differs from `path` (a symlink on the way). */
  readonly declared?: string;
  readonly role: ResourceRole;
  /** Per-device `<seclabel>` overrides that apply to this path. */
  readonly seclabels: readonly DeviceSecLabelDef[];
  /** The disk this path belongs to (its source or a backing layer). */
  readonly disk?: DiskDef;
  /** The serial/console this path belongs to. */
  readonly chardev?: ChardevDef;
  /** For a chardev's `<log file>`: the chardev whose log it is (`chardev` is then the log file itself). */
  readonly logOf?: ChardevDef;
  /**
   * The file itself, opened once by the lifecycle (O_PATH, no symlink on the way): drivers
   * label through it, never through the path. Not stored.
   */
  readonly handle?: FileHandle;
  /** Device + inode of the file when it was labelled: a restore acts only on that file. */
  readonly ident?: FileIdentity;
}

/**
 * Remembered original owners/labels, shared by all drivers. A path is remembered once
 * (its first original) and used by a set of guests; the original comes back when the
 * last of them lets go. Every call is idempotent, so a repair after a crash can repeat it.
 */
export interface LabelMemory {
  /**
   * Records that `uuid` uses `path`; keeps the first original. Returns the original in force.
   * What it recorded is on disk when it returns (the caller labels the file next), so it is
   * never called inside a store transaction.
   */
  remember(driver: DriverName, path: string, uuid: string, original: string): string;
  /**
   * remember() without its sync: the row is committed but reaches the disk at the next
   * syncRemembered() (or remember()). For a start, which records every original first and
   * syncs once before its first label. True when it added `uuid`'s use of `path`.
   */
  rememberUnsynced?(driver: DriverName, path: string, uuid: string, original: string): boolean;
  /** Brings every row rememberUnsynced() committed to disk (one sync; none when nothing changed). */
  syncRemembered?(): void;
  /** The original and the guests using `path`, or undefined when nothing is remembered. */
  recall(driver: DriverName, path: string): { readonly original: string; readonly users: readonly string[] } | undefined;
  /** Drops `uuid`'s use; returns the original when no guest uses the path any more. */
  release(driver: DriverName, path: string, uuid: string): string | undefined;
  /** Forgets `path` entirely, after its original was put back. */
  forget(driver: DriverName, path: string): void;
}

/** Live label reservations; uniqueness is enforced by the store. */
export interface LabelReservations {
  /** Reserves `label` for `uuid`; false when another guest holds it. */
  tryReserve(driver: DriverName, label: string, uuid: string): boolean;
  /** The guest holding `label`, if any. */
  holder(driver: DriverName, label: string): string | undefined;
  /** Number of labels this driver holds. */
  count(driver: DriverName): number;
}

export interface SecurityContext {
  /** The guest's private runtime dir (QMP socket, logs, pid). */
  readonly runtimeDir: string;
  /** The parent of every guest's runtime dir. */
  readonly runtimeRoot: string;
  readonly memory: LabelMemory;
  readonly reservations: LabelReservations;
  /** kvm when /dev/kvm is used, qemu under TCG. */
  readonly virtType: 'kvm' | 'qemu';
  /** The QEMU binary the guest runs. */
  readonly emulator: string;
  /** Reports what was left alone (a file that changed under a label); default: stderr. */
  readonly warn?: (message: string) => void;
}

/**
 * What a hook that may run a host program returns: the AppArmor driver's hooks run
 * `apparmor_parser`, off the event loop, so `svirt serve` goes on answering its other clients
 * meanwhile; the others return at once. The manager awaits every one.
 */
export type Awaitable<T> = T | Promise<T>;

/**
 * A security driver: labels a guest's files and confines its QEMU process. Methods are
 * synchronous (the store is synchronous), except the hooks that may run a host program
 * (Awaitable); a failing step throws a SvirtError naming the path or step.
 *
 * Only `name`, `probe` and `genLabel` are required. Every other member is optional and
 * the manager supplies its default (see manager.ts): a driver says only what it has to
 * say. The manager owns the loops: it labels resource by resource (and undoes what was
 * done, in reverse, across drivers, when a step fails), restores, merges confinement.
 * Restore members must be idempotent and accept what was never set (a rollback calls them
 * for the step that failed too, since it may have done half its work).
 */
export interface SecurityDriver {
  readonly name: DriverName;

  /** Whether this host can run the driver, and why not. */
  probe(): ProbeResult;

  /** The Domain Of Interpretation shown by `dominfo` and `capabilities`. Default "0". */
  doi?(): string;

  /** `<baselabel>` lines for `capabilities`. Default none. */
  baseLabels?(): readonly BaseLabel[];

  /** Notes for `capabilities`/`dominfo`, e.g. Landlock rights this kernel lacks. Default none. */
  features?(): readonly string[];

  /**
   * Fills this driver's `<seclabel>` for a guest about to start: allocates a dynamic
   * label (reserving it), or checks and reserves a static one. Returns the label to use.
   * Required: every driver states whether it confines the guest (`none` says type none),
   * so a driver cannot leave a guest unconfined by forgetting a member.
   */
  genLabel(def: DomainDef, ctx: SecurityContext): SecLabelDef;

  /** Re-reserves the label of a guest found running (reconcile); throws on a collision. Default: nothing reserved. */
  reserveLabel?(def: DomainDef, label: SecLabelDef, ctx: SecurityContext): void;

  /**
   * Start: what concerns the guest as a whole, before its resources are labelled one by
   * one (dac: /dev/kvm's ACL entry; apparmor: the profile naming every resource, loaded).
   * Pairs with restoreGuestLabel. Default: nothing.
   */
  setGuestLabel?(def: DomainDef, label: SecLabelDef, resources: readonly GuestResource[], ctx: SecurityContext): Awaitable<void>;

  /**
   * Stop, and the undo of a failed start: withdraws what setGuestLabel gave (revoke the ACL
   * entry, unload and delete the profile). Runs before the resources are given back, so
   * access goes first. Idempotent.
   */
  restoreGuestLabel?(def: DomainDef, label: SecLabelDef, ctx: SecurityContext): Awaitable<void>;

  /**
   * Labels one resource: called for each resource at start and for one at hotplug. Acts on
   * `resource.handle` (or reopens by identity), never on whatever the path names later;
   * remembers the original in `ctx.memory` first. Pairs with restoreResourceLabel.
   * Default: the driver labels no files.
   */
  setResourceLabel?(def: DomainDef, label: SecLabelDef, resource: GuestResource, ctx: SecurityContext): Awaitable<void>;

  /**
   * A start's first pass (SecurityManager.setAllLabel): records the original of a resource
   * setResourceLabel will label, through ctx.memory.rememberUnsynced, acting on the same file
   * (its handle or identity). Every driver's originals then reach the disk at one sync, before
   * the first label; setResourceLabel's own remember finds the row and syncs nothing. True
   * when it added this guest's use of the file (a failed start takes it back). Optional: a
   * driver without it remembers and syncs in setResourceLabel, file by file.
   */
  rememberResource?(def: DomainDef, label: SecLabelDef, resource: GuestResource, ctx: SecurityContext): boolean;

  /** Gives one resource its original label back (when no other guest still uses it). Idempotent. */
  restoreResourceLabel?(def: DomainDef, label: SecLabelDef, resource: GuestResource, ctx: SecurityContext): Awaitable<void>;

  /**
   * Labels the fd of a tap svirt made for the guest (libvirt's SetTapFDLabel): selinux labels
   * a macvtap node's fd and leaves /dev/net/tun alone (selinux/tap-label.ts). Default: nothing.
   */
  setTapFdLabel?(def: DomainDef, label: SecLabelDef, fd: number): void;

  /** What the launcher must apply to the QEMU process. Default: nothing. */
  confinement?(def: DomainDef, label: SecLabelDef, resources: readonly GuestResource[], ctx: SecurityContext): ConfinementPart;

  /**
   * What the launcher must apply to one helper process of the guest (swtpm, virtiofsd,
   * passt: see helper.ts), derived from the guest's label: the same uid, the guest's
   * SELinux context, a profile or ruleset naming exactly the helper's files. A driver that
   * confines QEMU but cannot confine this helper kind throws SVIRT_ERR_CONFINE, and the
   * device is refused. A driver with `confinement` but without this member refuses every
   * helper (the manager's default): nothing runs less confined than its guest.
   * May write and load what the launcher names (an AppArmor profile); restoreGuestLabel
   * withdraws it with the guest's own.
   */
  helperConfinement?(def: DomainDef, label: SecLabelDef, helper: HelperSpec, ctx: SecurityContext): Awaitable<ConfinementPart>;

  /** The dry run of helperConfinement, for `svirt profile`; touches nothing. Default: the merged spec is shown. */
  describeHelper?(def: DomainDef, label: SecLabelDef, helper: HelperSpec, ctx: SecurityContext): string;

  /** When the definition is removed (delete generated profile files...). Default: nothing. */
  undefine?(def: DomainDef): void;

  /**
   * Human-readable dry run: the process label and each path with the label it would get.
   * Touches nothing. A driver without one has no dry run (the manager says so).
   */
  describe?(def: DomainDef, label: SecLabelDef, resources: readonly GuestResource[], ctx: SecurityContext): string;

  /**
   * Files this driver leaves as they are for a reason users should know (a filesystem that
   * keeps no label, and what decides access instead), one line each, for `dominfo`.
   */
  fileNotes?(def: DomainDef, label: SecLabelDef, resources: readonly GuestResource[]): readonly string[];

  /** The label of a running guest's process, as `dominfo` shows it. Default: the label's text. */
  processLabel?(def: DomainDef, label: SecLabelDef, pid: number): string;

  /**
   * Labels for the sockets svirt makes for a guest (libvirt's SetSocketLabel): `listen` for
   * a socket QEMU accepts on (its monitor, a bound chardev), `connect` for svirt's own end
   * of a connection to QEMU. Only drivers whose kernel labels sockets have one.
   */
  socketLabels?(def: DomainDef, label: SecLabelDef): { readonly listen: string; readonly connect: string } | undefined;

  /** `enforcing`/`permissive` suffix for `dominfo`, when the model has one. */
  enforcing?(): boolean;
}
