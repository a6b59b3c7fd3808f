/**
 * The SELinux driver: sVirt's MCS isolation. Every guest runs in the policy's virtual
 * domain context (svirt_t) at a unique category pair, its private files carry the image
 * type at the same pair, and the policy's MCS constraint denies access across pairs.
 */
import { readFileSync } from 'node:fs';
import { labelTapFd } from './tap-label.js';
import type { DomainDef, SecLabelDef } from '../../domain/domain-def.js';
import { SvirtError } from '../../errors.js';
import * as nativeHost from '../../host/native.js';
import type { ConfinementPart } from '../confinement.js';
import type { HelperSpec } from '../helper.js';
import type { BaseLabel, GuestResource, ProbeResult, SecurityContext, SecurityDriver } from '../driver.js';
import { formatContext, parseContext } from './contexts.js';
import { generateLabel, reserveLevel } from './gen-label.js';
import { FileLabeller, type XattrHost } from './labeller.js';
import { DEFAULT_CATEGORY_RANGE, formatCategoryRange, pairCapacity, parseCategoryRange, type CategoryRange } from './mcs.js';
import { loadPolicyContexts, type PolicyContexts } from './policy-files.js';
import { describeLabels } from './describe.js';
import { unlabelledNotes } from './label-support.js';
import { imageLabelOf, planLabels, relabels, type LabelAction } from './rules.js';
import { randomBytes } from '../../host/random.js';
import { SELINUXFS, kernelRunsSelinux } from './selinux-kernel.js';

export interface SelinuxDriverOptions {
  /** Where the policy configuration lives; default /etc/selinux. */
  readonly root?: string;
  /** Categories dynamic labels draw pairs from, e.g. `c10.c99`; default: this process's clearance, else c0.c1023. */
  readonly categoryRange?: string;
  /**
   * For hosts whose kernel does not run SELinux: enabled when the policy files are
   * readable, labels real files, gives the QEMU process no exec context.
   */
  readonly userspaceTest?: boolean;
  /** A number in [0, 1); default a CSPRNG. */
  readonly random?: () => number;
  /** The xattr calls; default src/host/native.ts. */
  readonly xattrs?: XattrHost;
}

const VIRTIOFSD_REFUSED =
  "the policy's svirt_t may neither execute virtiofsd (lib_t) nor chroot in a user namespace (cap_userns), so it cannot run at the guest's context";
const NOT_ENABLED = 'Security driver selinux not enabled';

function cryptoRandom(): number {
  return randomBytes(6).readUIntBE(0, 6) / 2 ** 48;
}

export class SelinuxDriver implements SecurityDriver {
  readonly name = 'selinux' as const;
  readonly root: string;
  readonly userspaceTest: boolean;
  private readonly random: () => number;
  private readonly xattrs: XattrHost;
  private readonly labeller: FileLabeller;
  private loaded: PolicyContexts | undefined;
  private range: CategoryRange | undefined;

  constructor(options: SelinuxDriverOptions = {}) {
    this.root = options.root ?? '/etc/selinux';
    this.userspaceTest = options.userspaceTest ?? false;
    this.random = options.random ?? cryptoRandom;
    this.xattrs = options.xattrs ?? nativeHost;
    this.labeller = new FileLabeller(this.xattrs);
    // A bad configured range is a usage error now, not a driver that quietly probes disabled.
    if (options.categoryRange !== undefined) this.range = parseCategoryRange(options.categoryRange);
  }

  /** Whether the running kernel has SELinux (selinuxfs mounted). */
  kernelRunsSelinux(): boolean {
    return kernelRunsSelinux();
  }

  probe(): ProbeResult {
    const kernel = this.kernelRunsSelinux();
    if (!kernel && !this.userspaceTest) {
      return { status: 'disable', reason: `${NOT_ENABLED}: the kernel does not run SELinux` };
    }
    let contexts: PolicyContexts;
    try {
      contexts = this.contexts();
      this.categoryRange();
    } catch (err) {
      return { status: 'disable', reason: `${NOT_ENABLED}: ${err instanceof Error ? err.message : String(err)}` };
    }
    const notes: string[] = [];
    if (this.userspaceTest) {
      notes.push(
        'userspace test mode: files are labelled, the QEMU process gets no SELinux context' +
          (kernel ? '' : ' (the kernel does not run SELinux)'),
      );
    }
    if (!contexts.hasTcgDomain) {
      notes.push(
        `the policy has no TCG domain: TCG guests run as ${contexts.kvmDomain.type}, ` +
          'whose JIT needs execmem (the virt_use_execmem boolean)',
      );
    }
    return { status: 'enable', notes };
  }

  /** The policy's virtual domain and image contexts (read once per driver instance). */
  contexts(): PolicyContexts {
    this.loaded ??= loadPolicyContexts(this.root);
    return this.loaded;
  }

  /** The category range dynamic labels use. */
  categoryRange(): CategoryRange {
    this.range ??= parseCategoryRange(this.clearance() ?? DEFAULT_CATEGORY_RANGE);
    return this.range;
  }

  /** The range as text, e.g. `s0:c0.c1023`. */
  categoryRangeText(): string {
    return formatCategoryRange(this.categoryRange());
  }

  /** How many guests can hold a dynamic label at once: n(n−1)/2. */
  capacity(): number {
    return pairCapacity(this.categoryRange());
  }

  /** libvirt draws from its own process's range; used when it has contiguous categories. */
  private clearance(): string | undefined {
    if (!this.kernelRunsSelinux()) return undefined;
    try {
      const range = parseContext(readFileSync('/proc/self/attr/current', 'utf8').replace(/\0+$/, '').trim()).range;
      parseCategoryRange(range);
      return range;
    } catch {
      // No usable clearance (s0 only, or odd categories): the policy-wide default applies.
      return undefined;
    }
  }

  baseLabels(): readonly BaseLabel[] {
    const c = this.contexts();
    return [
      { virtType: 'kvm', label: formatContext(c.kvmDomain) },
      { virtType: 'qemu', label: formatContext(c.tcgDomain) },
    ];
  }

  features(): readonly string[] {
    const range = formatCategoryRange(this.categoryRange());
    const out = [`MCS category range ${range}: ${this.capacity()} labels`];
    if (!this.contexts().hasTcgDomain) out.push('no TCG domain in the policy: TCG guests need virt_use_execmem');
    if (this.userspaceTest) out.push('userspace test mode: no process label is applied');
    return out;
  }

  genLabel(def: DomainDef, ctx: SecurityContext): SecLabelDef {
    return generateLabel({ def, ctx, contexts: this.contexts(), range: this.categoryRange(), random: this.random });
  }

  reserveLabel(def: DomainDef, label: SecLabelDef, ctx: SecurityContext): void {
    if (label.type === 'none') return;
    if (label.label === undefined) {
      throw new SvirtError('SVIRT_ERR_INTERNAL', `the live SELinux seclabel of guest "${def.name}" has no <label>`);
    }
    reserveLevel(def, parseContext(label.label).range, ctx);
  }

  private plan(label: SecLabelDef, resource: GuestResource): LabelAction[] {
    return planLabels(label, [resource], this.contexts());
  }

  /**
   * Gives one resource the label the rules say (through its handle), remembering the
   * original in the store and in `trusted.svirt.selinux` first. A chardev socket QEMU
   * creates itself does not exist yet: the label of the (labelled) runtime dir or the
   * policy's type transition covers it.
   */
  setResourceLabel(def: DomainDef, label: SecLabelDef, resource: GuestResource, ctx: SecurityContext): void {
    for (const action of this.plan(label, resource)) {
      if (action.kind !== 'set') continue;
      this.labeller.set(resource, action.label, def.uuid, ctx.memory, action.role === 'chardev');
    }
  }

  /** A tap's fd: a macvtap node's gets the image label, /dev/net/tun is left alone (tap-label.ts). */
  setTapFdLabel(def: DomainDef, label: SecLabelDef, fd: number): void {
    if (relabels(label)) labelTapFd(this.xattrs, fd, imageLabelOf(label, this.contexts()), def.name);
  }

  /** Drops the guest's use of one resource; the original comes back when no guest uses it. */
  restoreResourceLabel(def: DomainDef, label: SecLabelDef, resource: GuestResource, ctx: SecurityContext): void {
    for (const action of this.plan(label, resource)) {
      if (action.kind === 'set') this.labeller.restore(resource, def.uuid, ctx.memory);
    }
  }

  confinement(def: DomainDef, label: SecLabelDef): ConfinementPart {
    // The launcher cannot set an exec context on a kernel without SELinux.
    if (this.userspaceTest || label.type === 'none') return {};
    if (label.label === undefined) {
      throw new SvirtError('SVIRT_ERR_CONFINE', `cannot confine guest "${def.name}": its SELinux label was not generated`);
    }
    return { selinuxExecLabel: label.label };
  }

  /**
   * A helper runs at its guest's context: the Debian reference policy has no domain of its
   * own for swtpm, virtiofsd or passt (libvirt uses one where Fedora's policy has it), and
   * svirt_t may execute them (bin_t) without a transition. Its files carry the guest's
   * image label, so the MCS constraint keeps it to its guest's files as it keeps QEMU.
   * virtiofsd is refused where a context would be applied: the policy lets svirt_t neither
   * execute it (lib_t) nor chroot in its user namespace (cap_userns), checked offline in
   * helper-decisions.test.ts.
   */
  helperConfinement(def: DomainDef, label: SecLabelDef, helper: HelperSpec): ConfinementPart {
    const part = this.confinement(def, label);
    if (helper.kind === 'virtiofsd' && part.selinuxExecLabel !== undefined) {
      throw new SvirtError('SVIRT_ERR_CONFINE', `${VIRTIOFSD_REFUSED}: the shared folder of guest "${def.name}" is refused`, {
        details: { driver: 'selinux', helper: helper.kind, id: helper.id },
      });
    }
    return part;
  }

  describeHelper(def: DomainDef, label: SecLabelDef, helper: HelperSpec): string {
    const context = label.label ?? '(not generated)';
    if (helper.kind === 'virtiofsd' && !this.userspaceTest) return `refused: ${VIRTIOFSD_REFUSED}`;
    const applied = this.userspaceTest ? ' (userspace test mode: not applied)' : '';
    return `process: ${context}${applied}: ${helper.kind} runs in its guest's domain and level (no transition)`;
  }

  describe(def: DomainDef, label: SecLabelDef, resources: readonly GuestResource[], ctx: SecurityContext): string {
    return describeLabels({
      def,
      label,
      resources,
      contexts: this.contexts(),
      range: this.categoryRange(),
      virtType: ctx.virtType,
      userspaceTest: this.userspaceTest,
      notes: (actions) => unlabelledNotes(actions, resources, this.xattrs, this.kernelRunsSelinux()),
    });
  }

  /** Files left unlabelled because their filesystem keeps no label, and the boolean that decides. */
  fileNotes(_def: DomainDef, label: SecLabelDef, resources: readonly GuestResource[]): string[] {
    return unlabelledNotes(
      resources.flatMap((r) => this.plan(label, r)),
      resources,
      this.xattrs,
      this.kernelRunsSelinux(),
    );
  }

  processLabel(def: DomainDef, label: SecLabelDef, pid: number): string {
    if (this.kernelRunsSelinux()) {
      try {
        const current = readFileSync(`/proc/${pid}/attr/current`, 'utf8').replace(/\0+$/, '').trim();
        if (current !== '') return current;
      } catch {
        // The process is gone or hides its attr: the label it was started with is the answer.
      }
    }
    return label.label ?? '';
  }

  socketLabels(_def: DomainDef, label: SecLabelDef): { listen: string; connect: string } | undefined {
    if (this.userspaceTest || !this.kernelRunsSelinux() || label.type === 'none' || label.label === undefined) return undefined;
    // svirt's end: its own user:role:type at the guest's level, so QEMU may write to the
    // accepted end (the MCS constraint compares QEMU's level with the client's).
    const own = readFileSync('/proc/thread-self/attr/current', 'utf8').replace(/\0+$/, '').trim().split(':');
    const level = label.label.split(':').slice(3).join(':');
    if (own.length < 3 || level === '') return undefined;
    return { listen: label.label, connect: `${own.slice(0, 3).join(':')}:${level}` };
  }

  enforcing(): boolean {
    try {
      return readFileSync(`${SELINUXFS}/enforce`, 'utf8').trim() === '1';
    } catch {
      // No selinuxfs: nothing is enforced.
      return false;
    }
  }
}
