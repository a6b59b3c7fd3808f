import { displayPorts } from '../../domain/display-def.js';
import type { DomainDef, SecLabelDef } from '../../domain/domain-def.js';
import { SvirtError } from '../../errors.js';
import { fingerprintHex } from '../../host/fingerprint.js';
import { fnv1a32Native } from '../../host/native.js';
import type {
  ConfinementPart,
  LandlockFsAccess,
  LandlockNetAccess,
  LandlockPathRule,
  LandlockScope,
  LandlockSpec,
} from '../confinement.js';
import type { GuestResource, ProbeResult, SecurityContext, SecurityDriver } from '../driver.js';
import type { HelperSpec } from '../helper.js';
import { helperRuleset, selfSandboxedLines } from './landlock-helper.js';
import { fsRightsForAbi, netRightsForAbi, scopesForAbi, LATEST_ABI, describeMissing } from './abi.js';

/** What the driver learns about the kernel; probed once by the caller (see probeLandlock). */
export interface LandlockHostInfo {
  /** The kernel's Landlock ABI, 0 when Landlock is unavailable. */
  readonly abi: number;
  /** Why Landlock is unavailable (ENOSYS, EOPNOTSUPP...), when abi is 0. */
  readonly error?: string;
  /** Whether unprivileged user namespaces work (needed for a private runtime view without root). */
  readonly userns: boolean;
}

export interface LandlockDriverOptions {
  /** true (default): rights the kernel lacks are dropped and reported; false: start fails instead. */
  readonly bestEffort?: boolean;
  /** The ABI the ruleset is written for when best effort is off (default: the newest svirt knows). */
  readonly requiredAbi?: number;
  /** Hide other guests' runtime dirs in a private mount namespace (default true when possible). */
  readonly mountView?: boolean;
  /** Read-only directories QEMU needs besides the defaults (firmware in unusual places). */
  readonly extraReadDirs?: readonly string[];
}

const FILE_READ: readonly LandlockFsAccess[] = ['read_file'];
const FILE_RW: readonly LandlockFsAccess[] = ['read_file', 'write_file', 'truncate'];
const DIR_READ_EXEC: readonly LandlockFsAccess[] = ['read_file', 'read_dir', 'execute'];
const DIR_READ: readonly LandlockFsAccess[] = ['read_file', 'read_dir'];
const RUNTIME_DIR: readonly LandlockFsAccess[] = [
  'read_file',
  'write_file',
  'read_dir',
  'make_reg',
  'make_sock',
  'remove_file',
  'truncate',
];

/** Code and data QEMU loads: its libraries and modules, firmware and option ROMs. */
const SYSTEM_READ_EXEC = ['/usr/lib', '/usr/lib64', '/lib', '/lib64', '/usr/libexec'];
const SYSTEM_READ = [
  '/usr/share/qemu',
  '/usr/share/seabios',
  '/usr/share/ipxe',
  '/usr/lib/ipxe',
  '/usr/share/OVMF',
  '/usr/share/qemu-efi-aarch64',
  '/usr/share/AAVMF',
];

/**
 * Kernel-enforced isolation with no LSM and no root: QEMU may read its own code and
 * firmware, use its own runtime dir and the few devices it needs, and nothing else. Images
 * come as inherited fds, so no image path is allowed at all. TCP is denied, signals and
 * abstract UNIX sockets are scoped to the guest (ABI ≥ 6).
 *
 * It labels no files and reserves nothing (its label is a fingerprint of the ruleset, shared by
 * guests with the same rules): those members are left to the manager's defaults.
 */
export class LandlockDriver implements SecurityDriver {
  readonly name = 'landlock' as const;
  private readonly host: LandlockHostInfo;
  private readonly options: LandlockDriverOptions;

  constructor(host: LandlockHostInfo, options: LandlockDriverOptions = {}) {
    this.host = host;
    this.options = options;
  }

  get abi(): number {
    return this.host.abi;
  }

  private get bestEffort(): boolean {
    return this.options.bestEffort ?? true;
  }

  /** The ABI the rules are written for: the kernel's in best effort, the required one otherwise. */
  private get targetAbi(): number {
    return this.bestEffort ? Math.min(this.host.abi, LATEST_ABI) : (this.options.requiredAbi ?? LATEST_ABI);
  }

  probe(): ProbeResult {
    if (this.host.abi < 1) {
      return { status: 'disable', reason: `the kernel does not offer Landlock (${this.host.error ?? 'no ABI'})` };
    }
    return { status: 'enable', notes: this.features() };
  }

  features(): readonly string[] {
    const notes = [`kernel ABI ${this.host.abi}`, this.bestEffort ? 'best effort' : `requires ABI ${this.targetAbi}`];
    const missing = describeMissing(this.host.abi);
    if (missing.length > 0) notes.push(`not enforced by this kernel: ${missing.join(', ')}`);
    notes.push(this.mountViewEnabled() ? 'private runtime view' : 'no private runtime view');
    return notes;
  }

  private mountViewEnabled(): boolean {
    if (this.options.mountView === false) return false;
    return process.getuid?.() === 0 || this.host.userns;
  }

  genLabel(def: DomainDef, ctx: SecurityContext): SecLabelDef {
    const asked = def.seclabels[0];
    if (asked?.type === 'static') {
      throw new SvirtError(
        'SVIRT_ERR_XML_INVALID',
        `landlock labels are generated from the ruleset; '${def.name}' cannot set a static one`,
      );
    }
    const spec = this.ruleset(def, [], ctx);
    const digest = fingerprintHex(JSON.stringify(spec), fnv1a32Native);
    return { type: 'dynamic', model: 'landlock', label: `landlock:abi${this.targetAbi}:${digest}` };
  }

  confinement(def: DomainDef, _label: SecLabelDef, resources: readonly GuestResource[], ctx: SecurityContext): ConfinementPart {
    const landlock = this.ruleset(def, resources, ctx);
    if (!this.mountViewEnabled()) return { landlock };
    return {
      landlock,
      mountView: { hide: ctx.runtimeRoot, keep: ctx.runtimeDir, userns: process.getuid?.() !== 0 },
    };
  }

  /** A helper gets a ruleset of its own (landlock-helper.ts) and its guest's private view of the runtime root. */
  helperConfinement(def: DomainDef, _label: SecLabelDef, helper: HelperSpec, ctx: SecurityContext): ConfinementPart {
    const view = this.mountViewEnabled()
      ? { mountView: { hide: ctx.runtimeRoot, keep: ctx.runtimeDir, userns: process.getuid?.() !== 0 } }
      : {};
    const landlock = this.helperRuleset(helper);
    // A ruleset that handles nothing this ABI has (passt's on a kernel without TCP rules) is none.
    if (landlock.handledFs.length + landlock.handledNet.length + landlock.scoped.length === 0) return view;
    return { landlock, ...view };
  }

  helperRuleset(helper: HelperSpec): LandlockSpec {
    return helperRuleset({ helper, abi: this.targetAbi, bestEffort: this.bestEffort, systemCode: SYSTEM_READ_EXEC });
  }

  describeHelper(_def: DomainDef, _label: SecLabelDef, helper: HelperSpec): string {
    if (helper.sandboxesItself === true) {
      const lines = selfSandboxedLines(helper, this.helperRuleset(helper), this.targetAbi, this.host.abi);
      if (this.mountViewEnabled()) lines.push("the guest's private view of the runtime root");
      return lines.join('\n');
    }
    return rulesetLines(this.helperRuleset(helper), `${helper.kind} ${helper.id}: a ruleset of its own`).join('\n');
  }

  /** The ruleset for a guest: system code read-only, its runtime dir, its own non-disk files. */
  ruleset(def: DomainDef, resources: readonly GuestResource[], ctx: SecurityContext): LandlockSpec {
    const abi = this.targetAbi;
    const rules: LandlockPathRule[] = [
      { path: ctx.emulator, access: ['read_file', 'execute'] },
      ...SYSTEM_READ_EXEC.map((path) => ({ path, access: DIR_READ_EXEC, optional: true })),
      ...[...SYSTEM_READ, ...(this.options.extraReadDirs ?? [])].map((path) => ({ path, access: DIR_READ, optional: true })),
      { path: '/etc/ld.so.cache', access: FILE_READ, optional: true },
      { path: '/dev/null', access: FILE_RW },
      { path: '/dev/urandom', access: FILE_READ },
      { path: '/dev/random', access: FILE_READ, optional: true },
      { path: ctx.runtimeDir, access: RUNTIME_DIR },
    ];
    if (ctx.virtType === 'kvm') rules.push({ path: '/dev/kvm', access: [...FILE_RW, 'ioctl_dev'] });
    // No /dev/ptmx, no /dev/pts: svirt allocates a guest's ptys and QEMU gets a socket the
    // monitor relays (src/lifecycle/pty-relay.ts). A rule on /dev/pts would cover every pty
    // of the host, other guests' consoles included.
    for (const r of resources) {
      switch (r.role) {
        case 'loader':
          // A pflash loader and its nvram come as fds (src/lifecycle/machine.ts); -bios opens a path.
          if (def.os.loader?.type !== 'pflash') rules.push({ path: r.path, access: FILE_READ });
          break;
        case 'kernel':
        case 'initrd':
        case 'dtb':
          rules.push({ path: r.path, access: FILE_READ });
          break;
        case 'nvram':
          if (def.os.loader?.type !== 'pflash') rules.push({ path: r.path, access: FILE_RW });
          break;
        case 'saved-state':
          rules.push({ path: r.path, access: FILE_RW });
          break;
        case 'chardev':
          rules.push(...chardevRules(def, r.path));
          break;
        case 'disk':
        case 'disk-readonly':
        case 'disk-shareable':
        case 'backing':
        case 'runtime-dir':
        case 'log':
        case 'helper-log':
        case 'tpm-state':
        case 'shared-dir':
        case 'shared-dir-readonly':
          // Disks and the log arrive as fds; the runtime dir is already in the list; a helper's
          // files are in its own ruleset (landlock-helper.ts), not QEMU's.
          break;
      }
    }
    const handledFs = fsRightsForAbi(abi);
    const handledNet = netRightsForAbi(abi);
    return {
      handledFs,
      handledNet,
      scoped: scopesForAbi(abi),
      pathRules: rules.map((r) => ({ ...r, access: r.access.filter((a) => handledFs.includes(a)) })),
      // a TCP display (VNC, SPICE) binds exactly its reserved port, nothing else
      netRules: handledNet.includes('bind_tcp')
        ? displayPorts(def.graphics).map((port) => ({ port, access: ['bind_tcp'] as const }))
        : [],
      bestEffort: this.bestEffort,
      logNewExec: abi >= 7,
      ...(this.bestEffort ? {} : { minAbi: abi }),
    };
  }

  describe(def: DomainDef, _label: SecLabelDef, resources: readonly GuestResource[], ctx: SecurityContext): string {
    const spec = this.ruleset(def, resources, ctx);
    const head = `landlock ABI ${this.host.abi} (${this.bestEffort ? 'best effort' : 'strict'}), rules for ABI ${this.targetAbi}`;
    return rulesetLines(spec, head).join('\n');
  }
}

function rulesetLines(spec: LandlockSpec, head: string): string[] {
  return [
    head,
    `handled fs: ${spec.handledFs.join(' ') || '(none)'}`,
    `handled net: ${spec.handledNet.join(' ') || '(none)'}; tcp ports allowed: ${spec.netRules.map((r) => r.port).join(' ') || 'none'}`,
    `scoped: ${spec.scoped.join(' ') || '(none)'}`,
    ...spec.pathRules.map((r) => `allow ${r.path}: ${r.access.join(' ')}${r.optional ? ' (if present)' : ''}`),
  ];
}

function chardevRules(def: DomainDef, path: string): LandlockPathRule[] {
  void def;
  void path;
  // svirt creates chardev files and binds listening sockets itself and hands QEMU the fds;
  // a socket QEMU connects to needs no filesystem right (Landlock does not mediate connect).
  return [];
}

export type { LandlockFsAccess, LandlockNetAccess, LandlockScope };
