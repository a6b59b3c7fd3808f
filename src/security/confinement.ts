/**
 * The confinement spec: what `native/svirt-exec` applies, in this order, before it execs
 * QEMU. Serialised as JSON and handed to svirt-exec on an inherited fd. Each security driver
 * contributes a part; the manager merges them (see merge-confinement.ts).
 */

export type LandlockFsAccess =
  | 'execute'
  | 'write_file'
  | 'read_file'
  | 'read_dir'
  | 'remove_dir'
  | 'remove_file'
  | 'make_char'
  | 'make_dir'
  | 'make_reg'
  | 'make_sock'
  | 'make_fifo'
  | 'make_block'
  | 'make_sym'
  | 'refer'
  | 'truncate'
  | 'ioctl_dev';

export type LandlockNetAccess = 'bind_tcp' | 'connect_tcp';

export type LandlockScope = 'abstract_unix_socket' | 'signal';

export interface LandlockPathRule {
  readonly path: string;
  readonly access: readonly LandlockFsAccess[];
  /** A missing path is skipped instead of failing the launch (e.g. /dev/kvm on a TCG host). */
  readonly optional?: boolean;
}

export interface LandlockNetRule {
  readonly port: number;
  readonly access: readonly LandlockNetAccess[];
}

export interface LandlockSpec {
  /** Access rights the ruleset handles (everything not granted by a rule is denied). */
  readonly handledFs: readonly LandlockFsAccess[];
  readonly handledNet: readonly LandlockNetAccess[];
  readonly scoped: readonly LandlockScope[];
  readonly pathRules: readonly LandlockPathRule[];
  readonly netRules: readonly LandlockNetRule[];
  /**
   * true: rights the running kernel lacks are dropped (and reported by the driver);
   * false: a kernel that cannot apply the whole ruleset fails the launch.
   */
  readonly bestEffort: boolean;
  /** ABI ≥ 7: have the kernel log denials of the confined program after exec. */
  readonly logNewExec: boolean;
  /** The ABI the ruleset was written for; without best effort an older kernel fails the launch. */
  readonly minAbi?: number;
}

export interface RlimitSpec {
  readonly resource: 'as' | 'core' | 'nofile' | 'nproc' | 'memlock' | 'fsize';
  readonly soft: number;
  readonly hard: number;
}

/** Hide every other guest's runtime dir: a private mount namespace where `hide` is an empty
 * tmpfs except for `keep`, bind-mounted back at its own path. */
export interface MountViewSpec {
  readonly hide: string;
  readonly keep: string;
  /** Unprivileged: create a user namespace first (uid/gid mapped to themselves). */
  readonly userns: boolean;
}

export interface ConfinementSpec {
  readonly version: 1;
  readonly rlimits: readonly RlimitSpec[];
  readonly mountView?: MountViewSpec;
  readonly uid?: number;
  readonly gid?: number;
  /** Supplementary groups after setgroups; svirt always passes []. */
  readonly groups?: readonly number[];
  /**
   * After the ids: a user namespace mapping root to the uid/gid, so the program may sandbox
   * itself with namespaces and chroot (virtiofsd). No capability outside it.
   */
  readonly userRoot?: boolean;
  readonly noNewPrivs: boolean;
  readonly selinuxExecLabel?: string;
  readonly apparmorProfile?: string;
  readonly landlock?: LandlockSpec;
  /** fds (besides 0, 1, 2) that survive into QEMU; every other fd is closed. */
  readonly keepFds: readonly number[];
  /** The guest's cgroup dirs (one per hierarchy), joined first (src/lifecycle/cgroup/). */
  readonly cgroups?: readonly string[];
}

/** What one driver adds to the spec. */
export interface ConfinementPart {
  readonly rlimits?: readonly RlimitSpec[];
  readonly mountView?: MountViewSpec;
  readonly uid?: number;
  readonly gid?: number;
  readonly selinuxExecLabel?: string;
  readonly apparmorProfile?: string;
  readonly landlock?: LandlockSpec;
}
