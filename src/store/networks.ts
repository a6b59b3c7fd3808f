/**
 * The store's network tables: network definitions with their running state, and the taps
 * running guests hold (deleted by name + ifindex at stop, cleanup and reconcile).
 */
import type { Database } from 'better-sqlite3';

/**
 * What a started network left on the host (network/network-def.ts's NetworkRuntime), kept as
 * JSON: the store does not look inside it.
 */
export type NetworkRuntime = object;

export interface StoredNetwork {
  readonly uuid: string;
  readonly name: string;
  readonly xml: string;
  readonly autostart: boolean;
  /** Undefined while the network is inactive. */
  readonly runtime?: NetworkRuntime;
}

export interface GuestTap {
  /** The guest's uuid. */
  readonly uuid: string;
  readonly name: string;
  readonly ifindex: number;
  readonly netns: number;
  readonly bridge: string;
  /** The svirt network the tap is on (type='network'). */
  readonly network?: string;
}

interface NetworkRow {
  uuid: string;
  name: string;
  xml: string;
  autostart: number;
  active: string | null;
}

function toNetwork(r: NetworkRow): StoredNetwork {
  const base = { uuid: r.uuid, name: r.name, xml: r.xml, autostart: r.autostart === 1 };
  return r.active === null ? base : { ...base, runtime: JSON.parse(r.active) as NetworkRuntime };
}

/** A network being started: by which process, and what it has made so far (a NetworkRuntime). */
export interface NetworkStart {
  readonly ownerPid: number;
  readonly ownerStart: number;
  readonly progress?: NetworkRuntime;
}

interface StartRow {
  owner_pid: number;
  owner_start: number;
  progress: string | null;
}

interface TapRow {
  uuid: string;
  name: string;
  ifindex: number;
  netns: number;
  bridge: string;
  network: string | null;
}

function toTap(r: TapRow): GuestTap {
  const base = { uuid: r.uuid, name: r.name, ifindex: r.ifindex, netns: r.netns, bridge: r.bridge };
  return r.network === null ? base : { ...base, network: r.network };
}

/** The network tables of one store (same database, same transactions). */
export class NetworkStore {
  constructor(private readonly db: Database) {}

  list(): StoredNetwork[] {
    return (this.db.prepare('SELECT * FROM networks ORDER BY name').all() as NetworkRow[]).map(toNetwork);
  }

  byName(name: string): StoredNetwork | undefined {
    const r = this.db.prepare('SELECT * FROM networks WHERE name = ?').get(name) as NetworkRow | undefined;
    return r && toNetwork(r);
  }

  byUuid(uuid: string): StoredNetwork | undefined {
    const r = this.db.prepare('SELECT * FROM networks WHERE uuid = ?').get(uuid) as NetworkRow | undefined;
    return r && toNetwork(r);
  }

  /** Inserts or replaces a definition by uuid; keeps autostart and the running state. */
  put(uuid: string, name: string, xml: string): void {
    this.db
      .prepare(
        'INSERT INTO networks (uuid, name, xml) VALUES (?, ?, ?) ON CONFLICT(uuid) DO UPDATE SET name = excluded.name, xml = excluded.xml',
      )
      .run(uuid, name, xml);
  }

  delete(uuid: string): void {
    this.db.prepare('DELETE FROM networks WHERE uuid = ?').run(uuid);
  }

  setAutostart(uuid: string, on: boolean): void {
    this.db.prepare('UPDATE networks SET autostart = ? WHERE uuid = ?').run(on ? 1 : 0, uuid);
  }

  /** Records (or with undefined, clears) what a start left on the host. */
  setRuntime(uuid: string, runtime: NetworkRuntime | undefined): void {
    this.db
      .prepare('UPDATE networks SET active = ? WHERE uuid = ?')
      .run(runtime === undefined ? null : JSON.stringify(runtime), uuid);
  }

  /** Who is starting the network, if anyone (the row stays when that process died). */
  startOf(uuid: string): NetworkStart | undefined {
    const r = this.db.prepare('SELECT * FROM network_starts WHERE uuid = ?').get(uuid) as StartRow | undefined;
    if (!r) return undefined;
    const base = { ownerPid: r.owner_pid, ownerStart: r.owner_start };
    return r.progress === null ? base : { ...base, progress: JSON.parse(r.progress) as NetworkRuntime };
  }

  /** Claims the start for a process (replacing a dead one's claim; call in a transaction after startOf). */
  claimStart(uuid: string, owner: { pid: number; startTime: number }): void {
    this.db
      .prepare('INSERT OR REPLACE INTO network_starts (uuid, owner_pid, owner_start, progress) VALUES (?, ?, ?, NULL)')
      .run(uuid, owner.pid, owner.startTime);
  }

  /** Records what the start has made so far, so a successor can remove it if the starter dies. */
  setStartProgress(uuid: string, progress: NetworkRuntime): void {
    this.db.prepare('UPDATE network_starts SET progress = ? WHERE uuid = ?').run(JSON.stringify(progress), uuid);
  }

  endStart(uuid: string): void {
    this.db.prepare('DELETE FROM network_starts WHERE uuid = ?').run(uuid);
  }

  addTap(t: GuestTap): void {
    this.db
      .prepare('INSERT OR REPLACE INTO guest_taps (uuid, name, ifindex, netns, bridge, network) VALUES (?, ?, ?, ?, ?, ?)')
      .run(t.uuid, t.name, t.ifindex, t.netns, t.bridge, t.network ?? null);
  }

  tapsOf(uuid: string): GuestTap[] {
    return (this.db.prepare('SELECT * FROM guest_taps WHERE uuid = ? ORDER BY name').all(uuid) as TapRow[]).map(toTap);
  }

  tapsOnNetwork(network: string): GuestTap[] {
    return (this.db.prepare('SELECT * FROM guest_taps WHERE network = ? ORDER BY uuid').all(network) as TapRow[]).map(toTap);
  }

  deleteTap(uuid: string, name: string): void {
    this.db.prepare('DELETE FROM guest_taps WHERE uuid = ? AND name = ?').run(uuid, name);
  }
}
