import type { DomainDef, SecLabelDef } from '../domain/domain-def.js';
import type { Awaitable, GuestResource, SecurityContext, SecurityDriver } from './driver.js';

/** What one driver did (or was doing when a step failed) for a guest, so it can be undone. */
export interface LabelStep {
  readonly driver: SecurityDriver;
  readonly label: SecLabelDef;
  /** setGuestLabel was called (restoreGuestLabel gives it back). */
  guest: boolean;
  /** setResourceLabel was called for these, in order. */
  readonly resources: GuestResource[];
}

/** An original a start's first pass recorded for a driver (SecurityDriver.rememberResource). */
export interface Noted {
  readonly driver: SecurityDriver;
  readonly r: GuestResource;
}

/**
 * Gives back what `steps` did, last driver first: its guest-wide grant is withdrawn first
 * (access goes before the files come back), then each resource, last first. Every restore
 * is tried; the errors are returned.
 */
export async function undoSteps(def: DomainDef, steps: readonly LabelStep[], ctx: SecurityContext): Promise<unknown[]> {
  const errors: unknown[] = [];
  const attempt = async (fn: () => Awaitable<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      errors.push(err);
    }
  };
  for (const { driver, label, guest, resources } of [...steps].reverse()) {
    if (guest) await attempt(() => driver.restoreGuestLabel?.(def, label, ctx));
    if (!driver.restoreResourceLabel) continue;
    for (const r of [...resources].reverse()) await attempt(() => driver.restoreResourceLabel?.(def, label, r, ctx));
  }
  return errors;
}

/**
 * A failed start's originals of files it never labelled: this guest's use of each goes, and
 * the original with it when no other guest uses the file (no owner is put back: the file was
 * not changed). Those it labelled are undoSteps'.
 */
export function unnote(def: DomainDef, noted: readonly Noted[], steps: readonly LabelStep[], ctx: SecurityContext): unknown[] {
  const errors: unknown[] = [];
  for (const { driver, r } of noted) {
    if (steps.some((s) => s.driver === driver && s.resources.includes(r))) continue;
    try {
      if (ctx.memory.release(driver.name, r.path, def.uuid) !== undefined) ctx.memory.forget(driver.name, r.path);
    } catch (err) {
      errors.push(err);
    }
  }
  return errors;
}
