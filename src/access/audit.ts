/**
 * The audit trail: one row per management operation and per label event, in the store,
 * append-only (triggers refuse UPDATE and DELETE, so neither svirt nor a bug in it can
 * rewrite history through SQL; only someone who drops the triggers, i.e. root editing the
 * file by hand, can). svirt never prunes it (docs/access.md says how an admin may).
 * Also the owners of guests: whoever defined them.
 */
import type { Database } from 'better-sqlite3';
import type { Store } from '../store/store.js';
import type { Identity } from './identity.js';
import type { LabelHold } from './kernel-denials.js';

export { ACCESS_SCHEMA } from '../store/schema.js';

export interface AuditEvent {
  readonly guest?: string | undefined;
  readonly uuid?: string | undefined;
  /** The verb or procedure (`start`, `DomainCreateWithFlags`) or a label event (`label`, `restore-labels`). */
  readonly op: string;
  readonly permission?: string | undefined;
  /** The labels involved, one string per driver (`dac=+1900..:+1900..`). */
  readonly labels?: readonly string[] | undefined;
  readonly allowed: boolean;
  /** `ok`, `warning: …`, or `error: …`. */
  readonly result: string;
  readonly why?: string | undefined;
}

export interface AuditRow extends AuditEvent {
  readonly seq: number;
  readonly at: number;
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
  readonly context: string | null;
  readonly via: string;
}

export function appendAudit(db: Database, who: Identity, e: AuditEvent): void {
  db.prepare(
    'INSERT INTO audit (at, uid, gid, pid, context, via, guest, uuid, op, permission, labels, allowed, result, why) ' +
      'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
  ).run(
    Date.now(),
    who.uid,
    who.gid,
    who.pid,
    who.context ?? null,
    who.via === 'tls' ? `tls:${who.tlsDn ?? '?'}` : who.via,
    e.guest ?? null,
    e.uuid ?? null,
    e.op,
    e.permission ?? null,
    e.labels && e.labels.length > 0 ? e.labels.join(' ') : null,
    e.allowed ? 1 : 0,
    e.result.slice(0, 4096),
    e.why ?? null,
  );
}

interface RawRow {
  seq: number;
  at: number;
  uid: number;
  gid: number;
  pid: number;
  context: string | null;
  via: string;
  guest: string | null;
  uuid: string | null;
  op: string;
  permission: string | null;
  labels: string | null;
  allowed: number;
  result: string;
  why: string | null;
}

/** The newest `limit` rows (optionally of one guest, since a time), oldest first. */
export function readAudit(db: Database, o: { guest?: string; since?: number; limit: number }): AuditRow[] {
  const where: string[] = [];
  const params: (string | number)[] = [];
  if (o.guest !== undefined) {
    where.push('guest = ?');
    params.push(o.guest);
  }
  if (o.since !== undefined) {
    where.push('at >= ?');
    params.push(o.since);
  }
  const rows = db
    .prepare(`SELECT * FROM audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`)
    .all(...params, o.limit) as RawRow[];
  return rows.reverse().map((r) => ({
    seq: r.seq,
    at: r.at,
    uid: r.uid,
    gid: r.gid,
    pid: r.pid,
    context: r.context,
    via: r.via,
    guest: r.guest ?? undefined,
    uuid: r.uuid ?? undefined,
    op: r.op,
    permission: r.permission ?? undefined,
    labels: r.labels ? r.labels.split(' ') : undefined,
    allowed: r.allowed === 1,
    result: r.result,
    why: r.why ?? undefined,
  }));
}

export function ownerOf(db: Database, uuid: string): number {
  const row = db.prepare('SELECT uid FROM domain_owners WHERE uuid = ?').get(uuid) as { uid: number } | undefined;
  return row?.uid ?? 0;
}

/**
 * Records the owner of a guest that is new (no definition and no running record had its uuid):
 * a row left by a removed guest is replaced, so a uuid reused by someone else is theirs.
 */
export function setOwner(db: Database, uuid: string, uid: number, gid: number): void {
  db.prepare('INSERT OR REPLACE INTO domain_owners (uuid, uid, gid) VALUES (?, ?, ?)').run(uuid, uid, gid);
}

/** How many `label` events the kernel-denials lookup reads back (newest first). */
const MAX_LABEL_EVENTS = 100_000;

/**
 * The SELinux levels and AppArmor profiles guests held, from the trail's `label` events and
 * the running guests' reservations (a guest started before the trail existed has no event).
 */
export function labelHolds(store: Store): LabelHold[] {
  const holds: LabelHold[] = [];
  const add = (guest: string, uuid: string | undefined, since: number, label: string): void => {
    const eq = label.indexOf('=');
    const driver = label.slice(0, eq);
    if (driver === 'selinux' || driver === 'apparmor') holds.push({ guest, uuid, driver, label: label.slice(eq + 1), since });
  };
  const rows = store.db
    .prepare(
      "SELECT at, guest, uuid, labels FROM audit WHERE op = 'label' AND labels IS NOT NULL AND guest IS NOT NULL ORDER BY seq DESC LIMIT ?",
    )
    .all(MAX_LABEL_EVENTS) as { at: number; guest: string; uuid: string | null; labels: string }[];
  for (const r of rows) for (const l of r.labels.split(' ')) add(r.guest, r.uuid ?? undefined, r.at, l);
  for (const rec of store.listRunning())
    for (const res of store.reservationsOf(rec.uuid)) add(rec.name, rec.uuid, rec.startedAt, `${res.driver}=${res.label}`);
  return holds;
}
