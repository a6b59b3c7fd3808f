import type { DomainDef, SecLabelDef } from '../domain/domain-def.js';
import { SvirtError } from '../errors.js';
import type { ConfinementPart, ConfinementSpec } from './confinement.js';
import type { DriverName, SecurityContext, SecurityDriver } from './driver.js';
import type { HelperSpec } from './helper.js';
import { describePart, mergeConfinement } from './merge-confinement.js';

/** The refusal of a helper by a driver that confines QEMU but has no helper member. */
export function cannotConfineHelper(driver: DriverName, helper: HelperSpec): SvirtError {
  return new SvirtError(
    'SVIRT_ERR_CONFINE',
    `driver '${driver}' cannot confine the ${helper.kind} helper of device ${helper.id}: the device is refused`,
    { details: { driver, helper: helper.kind, id: helper.id } },
  );
}

/**
 * Every active driver's part for one helper, merged. A driver without helperConfinement
 * that confines QEMU refuses the helper; one that confines no process (none) adds nothing.
 */
export async function mergeHelperConfinement(
  active: readonly { driver: SecurityDriver; label: SecLabelDef }[],
  def: DomainDef,
  helper: HelperSpec,
  ctx: SecurityContext,
  keepFds: readonly number[],
): Promise<ConfinementSpec> {
  const parts: { name: DriverName; part: ConfinementPart }[] = [];
  for (const { driver, label } of active) {
    if (driver.helperConfinement)
      parts.push({ name: driver.name, part: await driver.helperConfinement(def, label, helper, ctx) });
    else if (driver.confinement) throw cannotConfineHelper(driver.name, helper);
    else parts.push({ name: driver.name, part: {} });
  }
  const spec = mergeConfinement(parts, keepFds);
  if (helper.userRoot !== true) return spec;
  if (spec.uid === undefined && process.getuid?.() !== 0) {
    // Without root svirt cannot drop the helper's supplementary groups, and in a user namespace
    // it makes itself the kernel denies setgroups: virtiofsd's sandbox would fail half-way.
    throw new SvirtError(
      'SVIRT_ERR_CONFINE',
      `the ${helper.kind} helper of device ${helper.id} must run as root in a user namespace of its own, which needs svirt to run as root: the device is refused`,
      { details: { helper: helper.kind, id: helper.id } },
    );
  }
  return { ...spec, userRoot: true };
}

/** One driver's dry run for a helper: its own text, else its part, else why it refuses. */
export async function describeHelperOf(
  driver: SecurityDriver,
  label: SecLabelDef,
  def: DomainDef,
  helper: HelperSpec,
  ctx: SecurityContext,
): Promise<{ driver: DriverName; text: string }> {
  const name = driver.name;
  if (label.type === 'none') return { driver: name, text: '(type none: not confined by this driver)' };
  if (driver.describeHelper) return { driver: name, text: driver.describeHelper(def, label, helper, ctx) };
  if (driver.helperConfinement)
    return { driver: name, text: describePart(await driver.helperConfinement(def, label, helper, ctx)) };
  if (driver.confinement) return { driver: name, text: `refused: ${cannotConfineHelper(name, helper).message}` };
  return { driver: name, text: '(confines no process)' };
}
