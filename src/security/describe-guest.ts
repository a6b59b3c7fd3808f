import type { DomainDef } from '../domain/domain-def.js';
import type { DriverName, GuestResource } from './driver.js';
import type { SecurityManager } from './manager.js';

/** A guest's security as shown to users: dominfo, its `--json`, the remote protocol. */
export interface GuestSecurity {
  /** The primary driver's name: dominfo's "Security model". */
  readonly model: DriverName;
  readonly doi: string;
  /** Every driver's label, primary first. */
  readonly labels: readonly {
    readonly model: DriverName;
    /** The running process's label, or the configured one while shut off ('' for none). */
    readonly label: string;
    readonly type: string;
    readonly enforcing: boolean;
    /** Whether the model knows enforcing/permissive at all. */
    readonly hasEnforcingMode: boolean;
    readonly notes: readonly string[];
    /** Files the driver left as they are, and why (a filesystem that keeps no labels). */
    readonly files: readonly string[];
  }[];
}

/** The primary model and DOI, each driver's label (the process's own while it runs), and notes. */
export function describeGuest(
  manager: SecurityManager,
  def: DomainDef,
  pid: number | undefined,
  resources: readonly GuestResource[] = [],
): GuestSecurity {
  const labels = manager.drivers.map((d) => {
    const l = manager.labelFor(def, d);
    const none = !l || l.type === 'none' || d.name === 'none';
    return {
      model: d.name,
      label: none ? '' : pid === undefined ? (l.label ?? '') : manager.processLabel(d, def, l, pid),
      type: l?.type ?? 'none',
      // A model without an enforcing mode (uids, Landlock) is enforced by the kernel as is.
      enforcing: d.enforcing ? d.enforcing() : true,
      hasEnforcingMode: d.enforcing !== undefined,
      notes: d.features?.() ?? [],
      files: l && d.fileNotes ? d.fileNotes(def, l, resources) : [],
    };
  });
  return { model: manager.primary.name, doi: manager.doi(manager.primary), labels };
}
