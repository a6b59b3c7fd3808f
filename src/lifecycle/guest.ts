import type { DomainDef } from '../domain/domain-def.js';
import { parseDomainXml } from '../domain/index.js';
import { SvirtError } from '../errors.js';
import type { DefinedDomain, RunningRecord, Store } from '../store/store.js';

export type DomainState = 'running' | 'paused' | 'shut off';

/**
 * A guest, found once per call (by name or uuid) and parsed once: its live definition when
 * it runs, else the stored one. Steps get this, never a name to look up again.
 */
export interface Guest {
  readonly def: DomainDef;
  readonly state: DomainState;
  readonly persistent: boolean;
  /** The running record, when QEMU runs (or is being started or stopped). */
  readonly record?: RunningRecord;
  /** The persistent definition, when there is one. */
  readonly stored?: DefinedDomain;
}

/** The name libvirt's API uses for the same thing. */
export type DomainInfo = Guest;

export function noDomain(name: string): SvirtError {
  return new SvirtError('SVIRT_ERR_NO_DOMAIN', `Domain not found: no domain with matching name or uuid '${name}'`);
}

export function notRunning(name: string): SvirtError {
  return new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${name}' is not running`);
}

/** Finds a guest by name or uuid; throws SVIRT_ERR_NO_DOMAIN. */
export function findGuest(store: Store, nameOrUuid: string): Guest {
  const rec = store.getRunningByName(nameOrUuid) ?? store.getRunning(nameOrUuid.toLowerCase());
  if (rec) return runningGuest(store, rec);
  const d = store.getDefinedByName(nameOrUuid) ?? store.getDefinedByUuid(nameOrUuid.toLowerCase());
  if (!d) throw noDomain(nameOrUuid);
  return { def: parseDomainXml(d.xml), state: 'shut off', persistent: true, stored: d };
}

export function runningGuest(store: Store, rec: RunningRecord): Guest {
  const stored = rec.persistent ? store.getDefinedByUuid(rec.uuid) : undefined;
  return {
    def: parseDomainXml(rec.liveXml),
    state: rec.paused ? 'paused' : 'running',
    persistent: rec.persistent,
    record: rec,
    ...(stored ? { stored } : {}),
  };
}

/** The record of a guest whose QEMU runs (state running), or SVIRT_ERR_OPERATION_INVALID. */
export function requireRunning(g: Guest): RunningRecord {
  if (!g.record || g.record.state !== 'running') throw notRunning(g.def.name);
  return g.record;
}

/** The persistent definition, parsed; a transient guest has none. */
export function inactiveDef(g: Guest): DomainDef {
  if (!g.stored) {
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${g.def.name}' is transient: it has no inactive definition`);
  }
  return g.record ? parseDomainXml(g.stored.xml) : g.def;
}
