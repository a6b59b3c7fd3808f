import type { DomainDef, SecLabelDef } from '../domain/domain-def.js';
import { SvirtError } from '../errors.js';
import type { ConfinementPart, ConfinementSpec } from './confinement.js';
import type { DriverName, GuestResource, SecurityContext, SecurityDriver } from './driver.js';
import { mergeConfinement } from './merge-confinement.js';
import { openForRestore } from './open-for-restore.js';

/**
 * The stack of security drivers. The first is primary (it answers dominfo's "Security
 * model"); all of them label and confine. Multi-driver steps run in stack order and are
 * undone in reverse order when one fails.
 */
export class SecurityManager {
  readonly drivers: readonly SecurityDriver[];

  constructor(drivers: readonly SecurityDriver[]) {
    if (drivers.length === 0) throw new SvirtError('SVIRT_ERR_SECURITY_DRIVER', 'the security stack is empty');
    const names = new Set<string>();
    for (const d of drivers) {
      if (names.has(d.name)) throw new SvirtError('SVIRT_ERR_SECURITY_DRIVER', `driver '${d.name}' is stacked twice`);
      names.add(d.name);
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
    for (const { driver, label } of this.active(def)) driver.reserveLabel(def, label, ctx);
  }

  /** Labels everything; if a driver fails, the drivers before it restore, in reverse order. */
  setAllLabel(def: DomainDef, resources: readonly GuestResource[], ctx: SecurityContext): void {
    const done: { driver: SecurityDriver; label: SecLabelDef }[] = [];
    for (const item of this.active(def)) {
      try {
        item.driver.setAllLabel(def, item.label, resources, ctx);
      } catch (err) {
        for (const d of done.reverse()) {
          try {
            d.driver.restoreAllLabel(def, d.label, resources, ctx);
          } catch {
            // The original error is the one to report; the memory rows left by a failed
            // restore make the next reconcile try again.
          }
        }
        throw err;
      }
      done.push(item);
    }
  }

  /**
   * Restores in reverse stack order; every driver runs even if one fails; errors are joined.
   * A file is reached only if it is still the one labelled (see open-for-restore.ts).
   */
  restoreAllLabel(def: DomainDef, resources: readonly GuestResource[], ctx: SecurityContext): void {
    const errors: unknown[] = [];
    const opened = openForRestore(def, resources, ctx, this.drivers);
    try {
      for (const { driver, label } of this.active(def).reverse()) {
        try {
          driver.restoreAllLabel(def, label, opened.list, ctx);
        } catch (err) {
          errors.push(err);
        }
        try {
          driver.release?.(def, label, ctx);
        } catch (err) {
          errors.push(err);
        }
      }
    } finally {
      opened.close();
    }
    throwJoined(errors, `cannot restore the labels of '${def.name}'`);
  }

  setResourceLabel(def: DomainDef, resource: GuestResource, ctx: SecurityContext): void {
    const done: { driver: SecurityDriver; label: SecLabelDef }[] = [];
    for (const item of this.active(def)) {
      try {
        item.driver.setResourceLabel?.(def, item.label, resource, ctx);
      } catch (err) {
        for (const d of done.reverse()) {
          try {
            d.driver.restoreResourceLabel?.(def, d.label, resource, ctx);
          } catch {
            // Reported through the original error; the memory rows allow a later repair.
          }
        }
        throw err;
      }
      done.push(item);
    }
  }

  restoreResourceLabel(def: DomainDef, resource: GuestResource, ctx: SecurityContext): void {
    const errors: unknown[] = [];
    const opened = openForRestore(def, [resource], ctx, this.drivers);
    try {
      const r = opened.list[0];
      if (r === undefined) return; // changed under the label: reported and left alone
      for (const { driver, label } of this.active(def).reverse()) {
        try {
          driver.restoreResourceLabel?.(def, label, r, ctx);
        } catch (err) {
          errors.push(err);
        }
      }
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
    const parts: { name: DriverName; part: ConfinementPart }[] = this.active(def).map(({ driver, label }) => ({
      name: driver.name,
      part: driver.confinement(def, label, resources, ctx),
    }));
    return mergeConfinement(parts, keepFds);
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

function throwJoined(errors: unknown[], what: string): void {
  if (errors.length === 0) return;
  if (errors.length === 1) throw errors[0];
  const msgs = errors.map((e) => (e instanceof Error ? e.message : String(e)));
  throw new SvirtError('SVIRT_ERR_LABEL_RESTORE', `${what}: ${msgs.join('; ')}`, { cause: errors[0] });
}
