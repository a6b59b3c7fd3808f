/**
 * A driver's labelling as the lifecycle runs it: through a SecurityManager of that one
 * driver (the manager owns the label-then-undo loop; drivers only label one resource, or
 * the guest as a whole). The definition is given the driver's live label, as genLabels would.
 */
import type { DomainDef, SecLabelDef } from '../../src/domain/domain-def.js';
import type { GuestResource, SecurityContext, SecurityDriver } from '../../src/security/driver.js';
import { SecurityManager } from '../../src/security/manager.js';

function live(driver: SecurityDriver, def: DomainDef, label: SecLabelDef): DomainDef {
  return { ...def, seclabels: [{ ...label, model: driver.name }] };
}

export function setAllLabel(
  driver: SecurityDriver,
  def: DomainDef,
  label: SecLabelDef,
  resources: readonly GuestResource[],
  ctx: SecurityContext,
): Promise<void> {
  return new SecurityManager([driver]).setAllLabel(live(driver, def, label), resources, ctx);
}

export function restoreAllLabel(
  driver: SecurityDriver,
  def: DomainDef,
  label: SecLabelDef,
  resources: readonly GuestResource[],
  ctx: SecurityContext,
): Promise<void> {
  return new SecurityManager([driver]).restoreAllLabel(live(driver, def, label), resources, ctx);
}
