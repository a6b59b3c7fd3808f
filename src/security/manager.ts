import type { DomainDef, SecLabelDef } from '../domain/domain-def.js';
import { SvirtError } from '../errors.js';
import type { ConfinementSpec } from './confinement.js';
import type { BaseLabel, DriverName, GuestResource, SecurityContext, SecurityDriver } from './driver.js';
import type { HelperSpec } from './helper.js';
import { describeHelperOf, mergeHelperConfinement } from './helper-confinement.js';
import { mergeConfinement } from './merge-confinement.js';
import { openForRestore } from './open-for-restore.js';
import { throwJoined, withUndoErrors } from './label-errors.js';
import { undoSteps, unnote, type LabelStep, type Noted } from './label-steps.js';

/** The hooks that come in pairs: what one sets, the other gives back. */
const PAIRS = [
  ['setGuestLabel', 'restoreGuestLabel'],
  ['setResourceLabel', 'restoreResourceLabel'],
] as const;

/**
 * The stack of security drivers. The first is primary (it answers dominfo's "Security
 * model"); all of them label and confine. The manager owns the loops (label every resource,
 * undo in reverse across drivers when a step fails, restore) and the defaults of every
 * optional driver member, so a driver only says what it has to say.
 */
export class SecurityManager {
  readonly drivers: readonly SecurityDriver[];

  constructor(drivers: readonly SecurityDriver[]) {
    if (drivers.length === 0) throw new SvirtError('SVIRT_ERR_SECURITY_DRIVER', 'the security stack is empty');
    const names = new Set<string>();
    for (const d of drivers) {
      if (names.has(d.name)) throw new SvirtError('SVIRT_ERR_SECURITY_DRIVER', `driver '${d.name}' is stacked twice`);
      names.add(d.name);
      for (const [set, restore] of PAIRS) {
        if ((d[set] === undefined) !== (d[restore] === undefined)) {
          const [has, lacks] = d[set] === undefined ? [restore, set] : [set, restore];
          throw new SvirtError('SVIRT_ERR_SECURITY_DRIVER', `driver '${d.name}' has ${has} but no ${lacks}`);
        }
      }
    }
    if (names.has('none') && drivers.length > 1) {
      throw new SvirtError('SVIRT_ERR_SECURITY_DRIVER', "driver 'none' cannot be stacked with other drivers");
    }
    this.drivers = drivers;
  }

  get primary(): SecurityDriver {
    return this.drivers[0] as SecurityDriver;
  }

  get names(): DriverName[] {
    return this.drivers.map((d) => d.name);
  }

  /** The driver's Domain Of Interpretation; "0" when it has none of its own. */
  doi(driver: SecurityDriver): string {
    return driver.doi?.() ?? '0';
  }

  /** The driver's `<baselabel>` lines for `capabilities`; none by default. */
  baseLabels(driver: SecurityDriver): readonly BaseLabel[] {
    return driver.baseLabels?.() ?? [];
  }

  /** A running guest's process label as `dominfo` shows it; by default the label's text. */
  processLabel(driver: SecurityDriver, def: DomainDef, label: SecLabelDef, pid: number): string {
    return driver.processLabel?.(def, label, pid) ?? label.label ?? '';
  }

  /** The `<seclabel>` of `def` that belongs to `driver` (libvirt: no model means the primary's). */
  labelFor(def: DomainDef, driver: SecurityDriver): SecLabelDef | undefined {
    const own = def.seclabels.find((l) => l.model === driver.name);
    if (own) return own;
    if (driver === this.primary) return def.seclabels.find((l) => l.model === undefined);
    return undefined;
  }

  /**
   * Fills every driver's label for a guest about to start and reserves them. Returns the
   * definition with one `<seclabel>` per driver (model set). On failure nothing stays reserved
   * (the caller releases the guest's reservations, which is idempotent).
   */
  genLabels(def: DomainDef, ctx: SecurityContext): DomainDef {
    const labels: SecLabelDef[] = [];
    for (const driver of this.drivers) {
      const asked = this.labelFor(def, driver);
      if (asked?.type === 'none') {
        labels.push({ ...asked, model: driver.name });
        continue;
      }
      const input: DomainDef = { ...def, seclabels: asked ? [{ ...asked, model: driver.name }] : [] };
      labels.push({ ...driver.genLabel(input, ctx), model: driver.name });
    }
    // Labels for models not in this stack are kept as written (they may matter on another host).
    const foreign = def.seclabels.filter((l) => l.model !== undefined && !this.names.includes(l.model as DriverName));
    return { ...def, seclabels: [...labels, ...foreign] };
  }

  /** The live label of `driver` in a definition that went through genLabels. */
  liveLabel(def: DomainDef, driver: SecurityDriver): SecLabelDef {
    const l = def.seclabels.find((s) => s.model === driver.name);
    if (!l) {
      throw new SvirtError('SVIRT_ERR_INTERNAL', `domain '${def.name}' has no ${driver.name} label in its live definition`);
    }
    return l;
  }

  /** True once genLabels has filled every driver's label (a start that crashed earlier has none). */
  hasLiveLabels(def: DomainDef): boolean {
    return this.drivers.every((d) => def.seclabels.some((s) => s.model === d.name));
  }

  private active(def: DomainDef): { driver: SecurityDriver; label: SecLabelDef }[] {
    return this.drivers.map((driver) => ({ driver, label: this.liveLabel(def, driver) })).filter((x) => x.label.type !== 'none');
  }

  reserveLabels(def: DomainDef, ctx: SecurityContext): void {
    for (const { driver, label } of this.active(def)) driver.reserveLabel?.(def, label, ctx);
  }

  /**
   * Labels everything, driver by driver in stack order: the driver's guest-wide hook, then
   * each resource. When a step fails, every step done (the failing one included: it may
   * have done half its work) is undone in reverse, across drivers, and the step's error is
   * thrown (saying so if undoing failed too).
   */
  async setAllLabel(
    def: DomainDef,
    resources: readonly GuestResource[],
    ctx: SecurityContext,
    /** Resources the guest gets but that are labelled later (an incoming migration's shared images). */
    later?: (r: GuestResource) => boolean,
  ): Promise<void> {
    const steps: LabelStep[] = [];
    const noted: Noted[] = [];
    const active = this.active(def);
    try {
      // Every original first, on disk at one sync, then the labels: a start with N files pays
      // one sync, not N (each label still finds its original on disk before it).
      for (const { driver, label } of active) {
        if (!driver.rememberResource) continue;
        for (const r of resources) if (!later?.(r) && driver.rememberResource(def, label, r, ctx)) noted.push({ driver, r });
      }
      ctx.memory.syncRemembered?.();
      for (const { driver, label } of active) {
        const step: LabelStep = { driver, label, guest: false, resources: [] };
        steps.push(step);
        if (driver.setGuestLabel) {
          step.guest = true;
          await driver.setGuestLabel(def, label, resources, ctx);
        }
        if (!driver.setResourceLabel) continue;
        for (const r of resources) {
          if (later?.(r)) continue;
          step.resources.push(r);
          await driver.setResourceLabel(def, label, r, ctx);
        }
      }
    } catch (err) {
      throw withUndoErrors(err, [...(await undoSteps(def, steps, ctx)), ...unnote(def, noted, steps, ctx)]);
    }
  }

  /**
   * Restores in reverse stack order; every driver and every resource is tried even if one
   * fails; errors are joined. A file is reached only if it is still the one labelled (see
   * open-for-restore.ts).
   */
  async restoreAllLabel(def: DomainDef, resources: readonly GuestResource[], ctx: SecurityContext): Promise<void> {
    const opened = openForRestore(def, resources, ctx, this.drivers);
    let errors: unknown[];
    try {
      const steps = this.active(def).map(({ driver, label }) => ({ driver, label, guest: true, resources: opened.list }));
      errors = await undoSteps(def, steps, ctx);
    } finally {
      opened.close();
    }
    throwJoined(errors, `cannot restore the labels of '${def.name}'`);
  }

  /** Hotplug: labels one more resource with every driver; undone across drivers on failure. */
  async setResourceLabel(def: DomainDef, resource: GuestResource, ctx: SecurityContext): Promise<void> {
    const steps: LabelStep[] = [];
    try {
      for (const { driver, label } of this.active(def)) {
        if (!driver.setResourceLabel) continue;
        steps.push({ driver, label, guest: false, resources: [resource] });
        await driver.setResourceLabel(def, label, resource, ctx);
      }
    } catch (err) {
      throw withUndoErrors(err, await undoSteps(def, steps, ctx));
    }
  }

  /** Hot-unplug: restores one resource with every driver, if it is still the file labelled. */
  async restoreResourceLabel(def: DomainDef, resource: GuestResource, ctx: SecurityContext): Promise<void> {
    const opened = openForRestore(def, [resource], ctx, this.drivers);
    let errors: unknown[];
    try {
      const r = opened.list[0];
      if (r === undefined) return; // changed under the label: reported and left alone
      errors = await undoSteps(
        def,
        this.active(def).map(({ driver, label }) => ({ driver, label, guest: false, resources: [r] })),
        ctx,
      );
    } finally {
      opened.close();
    }
    throwJoined(errors, `cannot restore the label of "${resource.path}"`);
  }

  /** Merges every driver's part into one launcher spec; two drivers setting one field is an error. */
  confinement(
    def: DomainDef,
    resources: readonly GuestResource[],
    ctx: SecurityContext,
    keepFds: readonly number[],
  ): ConfinementSpec {
    const parts = this.active(def).map(({ driver, label }) => ({
      name: driver.name,
      part: driver.confinement?.(def, label, resources, ctx) ?? {},
    }));
    return mergeConfinement(parts, keepFds);
  }

  /**
   * The launcher spec of one helper process of a guest (SecurityDriver.helperConfinement),
   * merged like QEMU's. Fails closed: a driver that confines QEMU but has no helper member
   * refuses the helper (helper-confinement.ts).
   */
  helperConfinement(
    def: DomainDef,
    helper: HelperSpec,
    ctx: SecurityContext,
    keepFds: readonly number[],
  ): Promise<ConfinementSpec> {
    return mergeHelperConfinement(this.active(def), def, helper, ctx, keepFds);
  }

  /** `profile`: each driver's dry run for one helper, touching nothing. */
  dryRunHelper(def: DomainDef, helper: HelperSpec, ctx: SecurityContext): Promise<{ driver: DriverName; text: string }[]> {
    return Promise.all(this.drivers.map((driver) => describeHelperOf(driver, this.liveLabel(def, driver), def, helper, ctx)));
  }

  /**
   * `profile`: what each driver would apply to a guest with live labels, touching nothing. A
   * driver whose label is type none says so; one that confines but has no dry run is an error.
   */
  dryRun(def: DomainDef, resources: readonly GuestResource[], ctx: SecurityContext): { driver: DriverName; text: string }[] {
    return this.drivers.map((d) => {
      const label = this.liveLabel(def, d);
      if (label.type === 'none') return { driver: d.name, text: '(type none: not confined by this driver)' };
      if (!d.describe) throw new SvirtError('SVIRT_ERR_SECURITY_DRIVER', `driver '${d.name}' has no dry run`);
      return { driver: d.name, text: d.describe(def, label, resources, ctx) };
    });
  }

  /** Labels a tap's fd, driver by driver (see SecurityDriver.setTapFdLabel). */
  setTapFdLabel(def: DomainDef, fd: number): void {
    for (const { driver, label } of this.active(def)) driver.setTapFdLabel?.(def, label, fd);
  }

  /** The socket labels of the first driver that has them (see SecurityDriver.socketLabels). */
  socketLabels(def: DomainDef): { readonly listen: string; readonly connect: string } | undefined {
    for (const { driver, label } of this.active(def)) {
      const l = driver.socketLabels?.(def, label);
      if (l) return l;
    }
    return undefined;
  }

  undefine(def: DomainDef): void {
    for (const d of this.drivers) d.undefine?.(def);
  }
}
