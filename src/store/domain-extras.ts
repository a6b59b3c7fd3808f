/**
 * What svirt keeps of a guest beside its definition (issue 14): whether it starts at boot
 * (libvirt keeps that outside the XML too), and the taints of the run under way (a
 * qemu-monitor-command was used). Its own table, made on the first write, so the verbs that
 * never write it (list, dominfo of an untouched guest) cost nothing and the store's schema
 * fingerprint is not touched.
 */
import type { Store } from './store.js';

const TABLE = `
CREATE TABLE IF NOT EXISTS domain_extras (
  uuid TEXT PRIMARY KEY,
  autostart INTEGER NOT NULL DEFAULT 0,
  taint_run TEXT,
  taints TEXT
)`;

interface Row {
  autostart: number;
  taint_run: string | null;
  taints: string | null;
}

/** A run of a guest, as the store knows it: the running record's row id and start time. */
export interface RunKey {
  readonly id: number;
  readonly startedAt: number;
}

function runKey(r: RunKey): string {
  return `${r.id}:${r.startedAt}`;
}

/** Whether the table was ever made: a read of a store that never wrote it throws no error (issue 17). */
function made(store: Store): boolean {
  return store.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'domain_extras'").get() !== undefined;
}

function row(store: Store, uuid: string): Row | undefined {
  if (!made(store)) return undefined; // never written
  return store.db.prepare('SELECT autostart, taint_run, taints FROM domain_extras WHERE uuid = ?').get(uuid) as Row | undefined;
}

function ensure(store: Store, uuid: string): void {
  store.db.exec(TABLE);
  store.db.prepare('INSERT INTO domain_extras (uuid) VALUES (?) ON CONFLICT(uuid) DO NOTHING').run(uuid);
}

export function getAutostart(store: Store, uuid: string): boolean {
  return row(store, uuid)?.autostart === 1;
}

export function setAutostart(store: Store, uuid: string, on: boolean): void {
  store.tx(() => {
    ensure(store, uuid);
    store.db.prepare('UPDATE domain_extras SET autostart = ? WHERE uuid = ?').run(on ? 1 : 0, uuid);
  });
}

/** The uuids marked to start at boot. */
export function autostartUuids(store: Store): string[] {
  if (!made(store)) return [];
  return (store.db.prepare('SELECT uuid FROM domain_extras WHERE autostart = 1').all() as { uuid: string }[]).map((r) => r.uuid);
}

/** The taints of this run (a new run of the guest starts clean, as libvirt's do). */
export function taintsOf(store: Store, uuid: string, run: RunKey | undefined): string[] {
  const r = row(store, uuid);
  if (!run || !r || r.taint_run !== runKey(run) || r.taints === null) return [];
  return JSON.parse(r.taints) as string[];
}

/** Adds a taint to this run; true when it is new (the first of its kind is what gets logged). */
export function addTaint(store: Store, uuid: string, run: RunKey, taint: string): boolean {
  return store.tx(() => {
    ensure(store, uuid);
    const have = taintsOf(store, uuid, run);
    if (have.includes(taint)) return false;
    store.db
      .prepare('UPDATE domain_extras SET taint_run = ?, taints = ? WHERE uuid = ?')
      .run(runKey(run), JSON.stringify([...have, taint]), uuid);
    return true;
  });
}

/** A definition that went: its autostart mark goes with it (a running guest keeps its run's taints). */
export function forgetExtras(store: Store, uuid: string): void {
  if (made(store)) store.db.prepare('UPDATE domain_extras SET autostart = 0 WHERE uuid = ?').run(uuid);
}
