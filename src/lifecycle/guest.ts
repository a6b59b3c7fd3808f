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
  readonly name: string;
  readonly uuid: string;
  /** Parsed on first use: a list of 200 guests needs their names and states, not their XML. */
  readonly def: DomainDef;
  readonly state: DomainState;
  readonly persistent: boolean;
  /** The running record, when QEMU runs (or is being started or stopped). */
  readonly record?: RunningRecord;
  /** The persistent definition, when there is one. */
  readonly stored?: DefinedDomain;
}

/** A guest as `svirt list` shows it, read without its XML (Hypervisor.listBrief). */
export interface GuestBrief {
  readonly name: string;
  readonly uuid: string;
  readonly state: DomainState;
  readonly persistent: boolean;
  /** The running record's id, when it has one. */
  readonly id?: number;
}

/** A running record's state as `list` and dominfo show it. */
export function runningState(rec: { readonly paused: boolean | 0 | 1 }): DomainState {
  return rec.paused ? 'paused' : 'running';
}

/** Hypervisor.list(): every guest, running ones first, read in one snapshot (one query for all definitions). */
export function listGuests(store: Store): Guest[] {
  const [defined, records] = store.snapshot(() => [store.listDefined(), store.listRunning()] as const);
  const byUuid = new Map(defined.map((d) => [d.uuid, d]));
  const running = new Set(records.map((r) => r.uuid));
  const out = records.map((rec) => runningGuest(store, rec, byUuid));
  for (const d of defined) if (!running.has(d.uuid)) out.push(storedGuest(d));
  return out;
}

/** Hypervisor.listBrief(): every guest's name and state, running ones first, read in one snapshot. */
export function listBrief(store: Store): GuestBrief[] {
  const [defined, records] = store.snapshot(() => [store.listDefinedNames(), store.listRunningListed()] as const);
  const running = new Set(records.map((r) => r.uuid));
  const out = records.map((r): GuestBrief => ({
    id: r.id,
    name: r.name,
    uuid: r.uuid,
    state: runningState(r),
    persistent: r.persistent === 1,
  }));
  for (const d of defined)
    if (!running.has(d.uuid)) out.push({ name: d.name, uuid: d.uuid, state: 'shut off', persistent: true });
  return out;
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
  return storedGuest(d);
}

/** A shut-off guest of its persistent definition. */
export function storedGuest(d: DefinedDomain): Guest {
  return guestOf(d.xml, { name: d.name, uuid: d.uuid, state: 'shut off', persistent: true, stored: d });
}

/** `defined`: every definition by uuid, when the caller has read them all already (list). */
export function runningGuest(store: Store, rec: RunningRecord, defined?: ReadonlyMap<string, DefinedDomain>): Guest {
  const stored = rec.persistent ? (defined ? defined.get(rec.uuid) : store.getDefinedByUuid(rec.uuid)) : undefined;
  return guestOf(rec.liveXml, {
    name: rec.name,
    uuid: rec.uuid,
    state: runningState(rec),
    persistent: rec.persistent,
    record: rec,
    ...(stored ? { stored } : {}),
  });
}

function guestOf(xml: string, rest: Omit<Guest, 'def'>): Guest {
  let def: DomainDef | undefined;
  return {
    ...rest,
    get def(): DomainDef {
      return (def ??= parseDomainXml(xml));
    },
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
