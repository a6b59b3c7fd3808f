// Long file: the SecurityDriver members of one driver (its rules, parser and path checks
// already live beside it in apparmor-rules.ts, apparmor-parser.ts and apparmor-paths.ts).
import { SvirtError } from '../../errors.js';
import type { DomainDef, SecLabelDef } from '../../domain/domain-def.js';
import type { ConfinementPart } from '../confinement.js';
import type { GuestResource, ProbeResult, SecurityContext, SecurityDriver } from '../driver.js';
import { ProfileFiles, stateText } from './apparmor-files.js';
import type { GuestFiles } from './apparmor-files.js';
import { kernelProfileLoaded, kernelRunsAppArmor, processProfile } from './apparmor-kernel.js';
import { AppArmorParser, findParser } from './apparmor-parser.js';
import { assertSafeDomainName, assertSafePath, assertSafeProfileName, assertSafeUuid, normalisePath } from './apparmor-paths.js';
import { guestRulesText } from './apparmor-rules.js';
import { helperProfileText } from './apparmor-helper.js';
import { assertHelperId, type HelperSpec } from '../helper.js';
import type { RuleResource } from './apparmor-rules.js';
import { PROFILE_PREFIX, abstractionText, profileText } from './apparmor-template.js';

export interface AppArmorDriverOptions {
  /** Where profiles, rules files and the abstraction are written. Default /etc/apparmor.d/svirt. */
  readonly profileDir?: string;
  /** The apparmor_parser binary. Default: from PATH, else /sbin/apparmor_parser. */
  readonly parser?: string;
  /**
   * `kernel` (default): profiles are loaded into the kernel and QEMU is started under them.
   * `compile-only` (tests, hosts without AppArmor): profiles are written and compiled with
   * `apparmor_parser --skip-kernel-load`, never loaded; QEMU is not confined by AppArmor.
   */
  readonly mode?: 'kernel' | 'compile-only';
  /** apparmor_parser's --base, where `include <tunables/global>` is found. Default /etc/apparmor.d. */
  readonly baseDir?: string;
}

const NOT_ENABLED = 'Security driver apparmor not enabled';
/** A disk target dev safe to show in a profile comment. */
const DEVICE = /^[A-Za-z0-9_-]{1,32}$/u;

/**
 * sVirt's AppArmor flavour: one profile `svirt-<uuid>` per guest, generated from svirt's
 * template, its QEMU abstraction and a rules file naming exactly the guest's files. Loaded
 * (replaced) on start and hotplug, unloaded and deleted on stop, as libvirt does.
 */
export class AppArmorDriver implements SecurityDriver {
  readonly name = 'apparmor' as const;
  readonly mode: 'kernel' | 'compile-only';
  readonly profileDir: string;
  private readonly parser: AppArmorParser;
  private readonly files: ProfileFiles;

  constructor(options: AppArmorDriverOptions = {}) {
    this.mode = options.mode ?? 'kernel';
    const dir = options.profileDir ?? '/etc/apparmor.d/svirt';
    assertSafePath(dir, 'AppArmor profile dir');
    this.profileDir = normalisePath(dir);
    this.parser = new AppArmorParser(options.parser ?? findParser(), options.baseDir ?? '/etc/apparmor.d');
    this.files = new ProfileFiles(this.profileDir);
  }

  probe(): ProbeResult {
    if (this.mode === 'kernel' && !kernelRunsAppArmor()) {
      return { status: 'disable', reason: `${NOT_ENABLED}: the kernel does not run AppArmor` };
    }
    if (!this.parser.available()) {
      return { status: 'disable', reason: `${NOT_ENABLED}: no apparmor_parser at ${JSON.stringify(this.parser.path)}` };
    }
    return this.mode === 'kernel' ? { status: 'enable' } : { status: 'enable', notes: this.features() };
  }

  features(): readonly string[] {
    return this.mode === 'kernel' ? [] : ['compile-only: profiles are compiled, never loaded; QEMU is not confined by AppArmor'];
  }

  genLabel(def: DomainDef, ctx: SecurityContext): SecLabelDef {
    this.requireUsable();
    assertSafeUuid(def.uuid);
    assertSafeDomainName(def.name);
    const own = ownSecLabel(def);
    if (own?.type === 'none') return { type: 'none', model: 'apparmor', relabel: false };
    if (own?.baselabel !== undefined) {
      throw new SvirtError('SVIRT_ERR_XML_UNSUPPORTED', `guest "${def.name}": AppArmor has no <baselabel>`, {
        details: { baselabel: own.baselabel },
      });
    }
    if (own?.type === 'static') {
      const label = this.staticName(def, own);
      this.reserve(label, def.uuid, ctx);
      return { type: 'static', model: 'apparmor', relabel: own.relabel ?? false, label };
    }
    const label = dynamicName(def);
    if (own?.label !== undefined && own.label !== label) {
      throw new SvirtError(
        'SVIRT_ERR_XML_INVALID',
        `guest "${def.name}": a dynamic AppArmor <seclabel> is always ${label}, not ${JSON.stringify(own.label)}`,
        {
          details: { label: own.label },
        },
      );
    }
    this.reserve(label, def.uuid, ctx);
    return { type: 'dynamic', model: 'apparmor', relabel: true, label, imagelabel: label };
  }

  reserveLabel(def: DomainDef, label: SecLabelDef, ctx: SecurityContext): void {
    if (label.type === 'none') return;
    this.reserve(this.labelName(def, label), def.uuid, ctx);
  }

  /**
   * Start: writes the guest's profile naming every resource at once and loads it (compiles
   * it in compile-only mode); the per-resource hooks then find each resource already there.
   */
  async setGuestLabel(
    def: DomainDef,
    label: SecLabelDef,
    resources: readonly GuestResource[],
    ctx: SecurityContext,
  ): Promise<void> {
    if (label.type === 'none') return;
    this.requireUsable();
    const name = this.labelName(def, label);
    if (label.type === 'static') {
      // the administrator's own profile: svirt writes nothing, but will not start under a missing one
      if (this.mode === 'kernel' && !kernelProfileLoaded(name)) {
        throw new SvirtError('SVIRT_ERR_LABEL_APPLY', `guest "${def.name}": static AppArmor profile "${name}" is not loaded`, {
          details: { profile: name },
        });
      }
      return;
    }
    await this.install(def, ctx, name, resources.filter(relabelled).map(ruleResource));
  }

  async setResourceLabel(def: DomainDef, label: SecLabelDef, resource: GuestResource, ctx: SecurityContext): Promise<void> {
    if (label.type !== 'dynamic' || !relabelled(resource)) return;
    this.requireUsable();
    const name = this.labelName(def, label);
    const current = this.files.readResources(name);
    const added = ruleResource(resource);
    if (current.some((r) => sameResource(r, added))) return;
    await this.install(def, ctx, name, [...current, added]);
  }

  async restoreResourceLabel(def: DomainDef, label: SecLabelDef, resource: GuestResource, ctx: SecurityContext): Promise<void> {
    if (label.type !== 'dynamic') return;
    const name = this.labelName(def, label);
    // No profile files: restoreGuestLabel withdrew the whole profile (a stop, a failed start),
    // so nothing names this file any more. A profile still loaded without them is an error.
    if (!this.files.hasState(name) && !this.loadedInKernel(name)) return;
    this.requireUsable();
    const current = this.files.readResources(name);
    const gone = ruleResource(resource);
    const kept = current.filter((r) => !sameResource(r, gone));
    if (kept.length !== current.length) await this.install(def, ctx, name, kept);
  }

  confinement(def: DomainDef, label: SecLabelDef): ConfinementPart {
    if (label.type === 'none') return {};
    const name = this.labelName(def, label);
    // compile-only: the kernel has no AppArmor to switch to; the profile was only compiled
    return this.mode === 'kernel' ? { apparmorProfile: name } : {};
  }

  /**
   * A helper gets a profile of its own, `svirt-<uuid>-<id>` (apparmor-helper.ts), written and
   * loaded (compiled in compile-only mode) here; restoreGuestLabel withdraws it with the
   * guest's. A static profile is the administrator's: svirt derives no helper profile from
   * it, so the device is refused.
   */
  async helperConfinement(def: DomainDef, label: SecLabelDef, helper: HelperSpec): Promise<ConfinementPart> {
    if (label.type === 'none') return {};
    if (label.type === 'static') {
      throw new SvirtError(
        'SVIRT_ERR_CONFINE',
        `guest "${def.name}" runs under the static AppArmor profile "${label.label ?? ''}": svirt cannot derive a profile for its ${helper.kind} helper ${helper.id}, so the device is refused`,
      );
    }
    this.requireUsable();
    const name = this.helperProfileName(def, helper);
    const text = this.helperProfile(def, name, helper);
    this.files.write(name, { profile: text, rules: undefined, state: undefined });
    try {
      if (this.mode === 'kernel') await this.parser.replace(name, this.files.profilePath(name));
      else await this.parser.compile(name, this.files.profilePath(name));
    } catch (err) {
      this.files.remove(name);
      throw err;
    }
    return this.mode === 'kernel' ? { apparmorProfile: name } : {};
  }

  describeHelper(def: DomainDef, label: SecLabelDef, helper: HelperSpec): string {
    if (label.type === 'static') return `refused: the static profile "${label.label ?? ''}" has no helper profile`;
    const name = this.helperProfileName(def, helper);
    return [`# ---- ${this.files.profilePath(name)} (mode ${this.mode}; dry run)`, this.helperProfile(def, name, helper)].join(
      '\n',
    );
  }

  private helperProfileName(def: DomainDef, helper: HelperSpec): string {
    assertSafeUuid(def.uuid);
    assertHelperId(helper.id);
    return `${dynamicName(def)}-${helper.id}`;
  }

  private helperProfile(def: DomainDef, name: string, helper: HelperSpec): string {
    assertSafeDomainName(def.name);
    return helperProfileText({
      profileName: name,
      guestName: def.name,
      uuid: def.uuid,
      helper,
      protectedDirs: [this.profileDir],
    });
  }

  /** Stop, destroy, a failed start: unloads the guest's profiles (its own, its helpers') and deletes their files (idempotent). */
  async restoreGuestLabel(def: DomainDef, label: SecLabelDef): Promise<void> {
    if (label.type !== 'dynamic') return;
    const name = this.labelName(def, label);
    let unloadError: unknown;
    for (const n of [name, ...this.files.helperProfiles(name)]) {
      if (this.loadedInKernel(n)) {
        try {
          await this.parser.remove(n);
        } catch (err) {
          // keep going: the files go anyway (a retry unloads by name), then report the failure
          unloadError ??= err;
        }
      }
      this.files.remove(n);
    }
    if (unloadError !== undefined) throw unloadError;
  }

  undefine(def: DomainDef): void {
    assertSafeUuid(def.uuid);
    for (const n of this.files.helperProfiles(dynamicName(def))) this.files.remove(n);
    this.files.remove(dynamicName(def));
  }

  describe(def: DomainDef, label: SecLabelDef, resources: readonly GuestResource[], ctx: SecurityContext): string {
    if (label.type === 'none') return "# AppArmor: <seclabel type='none'>: QEMU is not confined by AppArmor\n";
    if (label.type === 'static') {
      const name = this.labelName(def, label);
      return `# AppArmor: static profile "${name}", loaded by the administrator; svirt generates no rules\n`;
    }
    const name = label.label ?? dynamicName(def);
    const files = this.generate(def, ctx, name, resources.filter(relabelled).map(ruleResource));
    return [
      `# AppArmor profile ${name} (mode ${this.mode}); dry run: nothing written or loaded`,
      `# ---- ${this.files.profilePath(name)}`,
      files.profile ?? '',
      `# ---- ${this.files.rulesPath(name)}`,
      files.rules ?? '',
      `# ---- ${this.files.abstractionPath}`,
      abstractionText(),
    ].join('\n');
  }

  processLabel(def: DomainDef, label: SecLabelDef, pid: number): string {
    const name = label.label ?? (label.type === 'dynamic' ? dynamicName(def) : 'unconfined');
    // e.g. "svirt-<uuid> (enforce)" where the kernel runs AppArmor; the name alone elsewhere
    return (kernelRunsAppArmor() ? processProfile(pid) : undefined) ?? name;
  }

  enforcing(): boolean {
    return true;
  }

  /** Whether the kernel holds this profile (a kernel without AppArmor, e.g. rebooted into another one, holds none). */
  private loadedInKernel(name: string): boolean {
    return this.mode === 'kernel' && kernelRunsAppArmor() && kernelProfileLoaded(name);
  }

  /** Generates everything in memory; a refused path or name throws before any file is touched. */
  private generate(def: DomainDef, ctx: SecurityContext, name: string, resources: readonly RuleResource[]): GuestFiles {
    assertSafeUuid(def.uuid);
    assertSafeDomainName(def.name);
    const rules = guestRulesText({
      guestName: def.name,
      uuid: def.uuid,
      emulator: ctx.emulator,
      virtType: ctx.virtType,
      rngDevices: (def.rngs ?? []).flatMap((r) => (r.backend.model === 'random' ? [r.backend.path] : [])),
      resources,
      protectedDirs: [this.profileDir],
    });
    const profile = profileText({
      profileName: name,
      guestName: def.name,
      uuid: def.uuid,
      abstractionPath: this.files.abstractionPath,
      rulesPath: this.files.rulesPath(name),
    });
    return { profile, rules, state: stateText(resources) };
  }

  /** Writes and loads (or compiles); on failure the guest's previous files are put back. */
  private async install(def: DomainDef, ctx: SecurityContext, name: string, resources: readonly RuleResource[]): Promise<void> {
    const next = this.generate(def, ctx, name, resources);
    const previous = this.files.read(name);
    this.files.ensureAbstraction(abstractionText());
    try {
      this.files.write(name, next);
      const file = this.files.profilePath(name);
      if (this.mode === 'kernel') await this.parser.replace(name, file);
      else await this.parser.compile(name, file);
    } catch (err) {
      try {
        this.files.write(name, previous);
      } catch {
        // the original failure is the one to report; a rollback error would only hide it
      }
      throw err;
    }
  }

  private requireUsable(): void {
    const probe = this.probe();
    if (probe.status === 'disable')
      throw new SvirtError('SVIRT_ERR_SECURITY_UNAVAILABLE', probe.reason, { details: { driver: 'apparmor' } });
  }

  private reserve(label: string, uuid: string, ctx: SecurityContext): void {
    if (!ctx.reservations.tryReserve('apparmor', label, uuid)) {
      const holder = ctx.reservations.holder('apparmor', label);
      throw new SvirtError(
        'SVIRT_ERR_LABEL_CONFLICT',
        `AppArmor profile "${label}" is in use by guest ${holder ?? '(unknown)'}`,
        {
          details: { label, holder },
        },
      );
    }
  }

  /** The profile name of a label svirt gave out, checked again: it is used in paths and argv. */
  private labelName(def: DomainDef, label: SecLabelDef): string {
    if (label.type === 'static') return this.staticName(def, label);
    assertSafeUuid(def.uuid);
    const name = dynamicName(def);
    if (label.label !== undefined && label.label !== name) {
      throw new SvirtError(
        'SVIRT_ERR_LABEL_APPLY',
        `guest "${def.name}": dynamic AppArmor label ${JSON.stringify(label.label)} is not ${name}`,
        {
          details: { label: label.label },
        },
      );
    }
    return name;
  }

  private staticName(def: DomainDef, label: SecLabelDef): string {
    const name = label.label;
    if (name === undefined)
      throw new SvirtError('SVIRT_ERR_XML_INVALID', `guest "${def.name}": static AppArmor <seclabel> without <label>`);
    assertSafeProfileName(name);
    if (name === 'unconfined') {
      throw new SvirtError(
        'SVIRT_ERR_XML_INVALID',
        `guest "${def.name}": static AppArmor profile "unconfined" confines nothing; use <seclabel type='none'>`,
        {
          details: { label: name },
        },
      );
    }
    if (name.startsWith(PROFILE_PREFIX) && name !== dynamicName(def)) {
      throw new SvirtError('SVIRT_ERR_XML_INVALID', `guest "${def.name}": "${name}" is another guest's generated profile`, {
        details: { label: name },
      });
    }
    return name;
  }
}

function dynamicName(def: DomainDef): string {
  return `${PROFILE_PREFIX}${def.uuid}`;
}

/** The domain's AppArmor `<seclabel>`: model apparmor, else one without a model (the primary's). */
function ownSecLabel(def: DomainDef): SecLabelDef | undefined {
  return def.seclabels.find((s) => s.model === 'apparmor') ?? def.seclabels.find((s) => s.model === undefined);
}

/** A per-device `<seclabel model='apparmor' relabel='no'>` keeps the file out of the profile. */
function relabelled(resource: GuestResource): boolean {
  return !resource.seclabels.some((s) => s.model === 'apparmor' && s.relabel === false);
}

/** Rules are made from the path as the domain declares it: a symlink gets a rule of its own. */
function ruleResource(resource: GuestResource): RuleResource {
  const dev = resource.disk?.target.dev;
  const path = resource.declared ?? resource.path;
  return dev !== undefined && DEVICE.test(dev) ? { path, role: resource.role, device: dev } : { path, role: resource.role };
}

function sameResource(a: RuleResource, b: RuleResource): boolean {
  return a.path === b.path && a.role === b.role;
}
