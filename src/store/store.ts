// Long file: the one class that holds every SQL statement of the store, so every transaction
// boundary is visible in one place; its parts (definitions, running records, the journal,
// reservations, remembered labels) share the same connection and transactions.
import { createRequire } from 'node:module';
import type DatabaseType from 'better-sqlite3';

// CommonJS: require() is several ms cheaper than an ESM import at every CLI start.
const Database = createRequire(import.meta.url)('better-sqlite3') as typeof DatabaseType;
type Database = DatabaseType.Database;
import { chmodSync, existsSync, mkdirSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { SvirtError } from '../errors.js';
import { loadAddon } from '../host/addon.js';
import { addonPath } from '../host/native.js';
import { fnv1a32 } from '../host/fingerprint.js';
import { packageRoot } from '../host/package-root.js';
import type { DriverName, GuestResource, LabelMemory, LabelReservations } from '../security/driver.js';
import { storeClosed, storeOpened } from './open-stores.js';
import { shareStatements } from './statement-cache.js';
import { claimDirFromEnv, HostClaims } from './host-claims.js';
import { inTransaction, type TransactionMode } from './transaction.js';
import { syncWal, syncWalAsync } from './wal-sync.js';
import { deserializeResources, serializeResources, toStored } from './resources.js';
import { ACCESS_SCHEMA, NETWORK_SCHEMA, SCHEMA } from './schema.js';
import { noteTouched, settleTouched, type GuestRows } from './touched.js';

const ADDON = 'better-sqlite3/build/Release/better_sqlite3.node';
/** better-sqlite3's addon, loaded once per process (host/addon.ts). Otherwise better-sqlite3
 * finds it through the `bindings` package, which walks a stack trace and tries a dozen paths at
 * every start (and cannot from the CLI bundle). Where Node's resolution would look first, the
 * package's own node_modules, costs one stat; anywhere else (a hoisted install) Node resolves
 * the path. better-sqlite3 takes the addon object (lib/database.js), though its types name
 * only a path. */
function nativeBinding(): object {
  const own = join(packageRoot(), 'node_modules', ADDON);
  return loadAddon(existsSync(own) ? own : createRequire(import.meta.url).resolve(ADDON)) as object;
}

export type RunState = 'starting' | 'running' | 'stopping';

export interface DefinedDomain {
  readonly uuid: string;
  readonly name: string;
  readonly xml: string;
}

/** A guest that runs, or that a svirt process is starting or stopping. */
export interface RunningRecord {
  /** Small numeric id, as virsh shows in `list` (the row id). */
  readonly id: number;
  readonly uuid: string;
  readonly name: string;
  readonly state: RunState;
  readonly pid: number | null;
  readonly pidStart: number | null;
  readonly monitorPid: number | null;
  /** The svirt process working on a starting/stopping guest (pid + start time). */
  readonly ownerPid: number | null;
  readonly ownerStart: number | null;
  readonly runtimeDir: string;
  readonly qmpPath: string;
  /** Live XML: the definition with every driver's generated `<seclabel>`. */
  readonly liveXml: string;
  readonly persistent: boolean;
  /** Driver names of the stack the guest was started with, primary first. */
  readonly stack: readonly DriverName[];
  /** The resources labelled at start, in their stored form (see store/resources.ts). */
  readonly resources: readonly GuestResource[];
  readonly paused: boolean;
  readonly startedAt: number;
  /** An operation in progress on the running guest (the intent journal), with its owner in ownerPid. */
  readonly pending: PendingOp | null;
  /** The guest's helper processes (swtpm, virtiofsd, passt), journalled before each is spawned. */
  readonly helpers: readonly HelperRecord[];
}

/**
 * What reconcile's pass over every running record reads of each: no XML, no resources, no
 * helpers, so that 200 running guests cost a command 200 short rows (issue 17). The whole
 * record is read again for the few that need work.
 */
export interface RunningCheck {
  readonly uuid: string;
  readonly state: RunState;
  readonly pid: number | null;
  readonly pidStart: number | null;
  readonly ownerPid: number | null;
  readonly ownerStart: number | null;
  /** The stack as stored (JSON); read only for a record whose reservations are gone. */
  readonly stack: string;
  /** 1 when an operation is in progress (the record's `pending`). */
  readonly pending: 0 | 1;
  /** 1 when any label is reserved under the guest's uuid. */
  readonly reserved: 0 | 1;
}

/** What `svirt list` shows of a running record. */
export interface RunningListed {
  readonly id: number;
  readonly uuid: string;
  readonly name: string;
  readonly persistent: 0 | 1;
  readonly paused: 0 | 1;
}

/** A definition's name and uuid, without its XML. */
export type DefinedName = Pick<DefinedDomain, 'uuid' | 'name'>;

/**
 * One helper process of a running guest. Written with `pid: null` before it is spawned and
 * completed once it runs, so a crash between the two still finds it (by `token`, which the
 * helper carries in its environment as SVIRT_HELPER).
 */
export interface HelperRecord {
  readonly kind: string;
  readonly id: string;
  readonly token: string;
  readonly pid: number | null;
  readonly startTime: number | null;
}

/** What a device or state operation intends, written before it touches anything. */
export interface PendingOp {
  readonly op: 'attach' | 'detach' | 'eject' | 'insert' | 'save' | 'migrate-out' | 'migrate-in' | 'snapshot';
  /** Target dev of the disk concerned. */
  readonly target?: string;
  /** Serialized GuestResource[] the operation labels or restores. */
  readonly resources?: readonly GuestResource[];
  /** fdset ids and block nodes handed to QEMU, so a repair can take them back. */
  readonly fdsets?: readonly number[];
  readonly nodes?: readonly string[];
  readonly device?: string;
  /** save: the state file and whether the guest ran before. */
  readonly file?: string;
  /** save: the name the finished state file takes (it is written beside it first). */
  readonly replaces?: string;
  readonly wasRunning?: boolean;
  /** A NIC (src/lifecycle/nic-plug.ts): its QEMU backend id, the getfd names and the tap made for it. */
  readonly netdev?: string;
  readonly fdnames?: readonly string[];
  readonly tap?: string;
  /** A migration (src/lifecycle/migrate/): how far it got, and the handover the source described (JSON). */
  readonly migration?: { readonly phase: string; readonly cookie: string; readonly uri?: string };
  /** A live external snapshot (src/lifecycle/snapshots/snapshot-live.ts): its phase and plan (JSON). */
  readonly snapshot?: { readonly phase: 'prepare' | 'switched'; readonly plan: string };
}

interface RunningRow {
  id: number;
  uuid: string;
  name: string;
  state: RunState;
  pid: number | null;
  pid_start: number | null;
  monitor_pid: number | null;
  owner_pid: number | null;
  owner_start: number | null;
  runtime_dir: string;
  qmp_path: string;
  live_xml: string;
  persistent: number;
  stack: string;
  resources: string;
  paused: number;
  started_at: number;
  pending: string | null;
  helpers: string | null;
}

/** The columns migrate() adds to an older file; part of the fingerprint. */
const MIGRATIONS = 'running.pending,running.helpers';

/**
 * Covering indexes for the reads of every command: reconcile's check of each running record
 * (runningChecks) and `list` (listRunningListed, listDefinedNames) read these and never the
 * tables' rows, which hold each guest's XML: with 200 guests, a few index pages instead of
 * hundreds of row pages (issue 17). Made after migrate(), whose column one of them names.
 */
const INDEXES = `
CREATE INDEX IF NOT EXISTS running_checks ON running
  (uuid, state, pid, pid_start, owner_pid, owner_start, stack, pending IS NOT NULL);
CREATE INDEX IF NOT EXISTS running_listed ON running (started_at, name, uuid, persistent, paused);
CREATE INDEX IF NOT EXISTS domains_names ON domains (name, uuid);
`;

/** The queries those indexes cover (store.test.ts holds each to its index). */
export const RUNNING_CHECKS_SQL = `SELECT uuid, state, pid, pid_start AS pidStart, owner_pid AS ownerPid,
  owner_start AS ownerStart, stack, pending IS NOT NULL AS pending,
  EXISTS (SELECT 1 FROM reservations r WHERE r.uuid = running.uuid) AS reserved FROM running`;
export const RUNNING_LISTED_SQL = 'SELECT rowid AS id, uuid, name, persistent, paused FROM running ORDER BY started_at, name';
export const DEFINED_NAMES_SQL = 'SELECT uuid, name FROM domains ORDER BY name';

/** A fingerprint of the schema and of migrate()'s columns, kept in the file's `PRAGMA user_version`
 * (31 bits): a file whose version differs gets the schema and the migrations run again. */
export function schemaFingerprint(): number {
  return fnv1a32(SCHEMA + NETWORK_SCHEMA + ACCESS_SCHEMA + MIGRATIONS + INDEXES) >>> 1 || 1;
}

/**
 * schemaFingerprint()'s value, written out: hashing ~7 kB in a fresh process is a hot loop that
 * V8 compiles on the stack (OSR), 2-4 ms of every CLI verb (issue 17). store.test.ts fails when
 * they differ, so a schema change cannot keep an old number; native/svirt-cleanup.c holds the
 * value it was written for (its test keeps that equal too).
 */
export const SCHEMA_FINGERPRINT = 60629155;

/** Columns added after the first schema (MIGRATIONS names them). */
function migrate(db: Database): void {
  const cols = (db.prepare('PRAGMA table_info(running)').all() as { name: string }[]).map((c) => c.name);
  if (!cols.includes('pending')) db.exec('ALTER TABLE running ADD COLUMN pending TEXT');
  if (!cols.includes('helpers')) db.exec('ALTER TABLE running ADD COLUMN helpers TEXT');
}

function toRecord(r: RunningRow): RunningRecord {
  let resources: readonly GuestResource[] | undefined;
  return {
    id: r.id,
    uuid: r.uuid,
    name: r.name,
    state: r.state,
    pid: r.pid,
    pidStart: r.pid_start,
    monitorPid: r.monitor_pid,
    ownerPid: r.owner_pid,
    ownerStart: r.owner_start,
    runtimeDir: r.runtime_dir,
    qmpPath: r.qmp_path,
    liveXml: r.live_xml,
    persistent: r.persistent === 1,
    stack: JSON.parse(r.stack) as DriverName[],
    // decoded when read: `list` and reconcile's liveness checks read records by the hundred and never their resources
    get resources() {
      return (resources ??= deserializeResources(r.resources));
    },
    paused: r.paused === 1,
    startedAt: r.started_at,
    pending: r.pending === null ? null : (JSON.parse(r.pending) as PendingOp),
    helpers: r.helpers === null ? [] : (JSON.parse(r.helpers) as HelperRecord[]),
  };
}

/**
 * How many pages the WAL may hold before a commit copies them into svirt.db (SQLite's default is
 * 1,000). A close leaves the WAL (keepWalAtClose), and a command's open, the first on the file
 * since the last close, reads every frame of it to rebuild its index (~3.5 us a frame here):
 * this bounds that read. A start writes 28 pages, a destroy 26, a define 9, so a checkpoint (two
 * syncs) comes about every fifth start or destroy and not at each command's close.
 */
export const WAL_AUTOCHECKPOINT_PAGES = 128;

/**
 * Has the connection's close leave the WAL as it is (SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, set by
 * native/store-ext.c, which is svirt's addon loaded as an SQLite extension: a reference more to
 * a library Node has loaded). Without it, the last connection's close copies the WAL into
 * svirt.db, syncs both and removes it, and the next command makes it anew: a CLI verb is nearly
 * always the last, so that was four syncs and two unlinks a writing command, where its commit
 * needs one sync of the WAL (wal-sync.ts; close() does it). Where the addon is not built the
 * close checkpoints as before: the same store, a slower one.
 */
function keepWalAtClose(db: Database): void {
  try {
    (db.loadExtension as (this: Database, file: string, entryPoint: string) => void).call(
      db,
      addonPath(),
      'sqlite3_svirtstore_init',
    );
  } catch {
    // not built, or an addon older than the entry point
  }
}

/** The `driver` column of a display port's reservation (no security driver has this name). */
const PORT_RESERVATION = 'tcp-port';

/**
 * svirt's state in one SQLite file. Several svirt processes may use it at once: WAL mode,
 * a busy timeout, and every multi-step change in an IMMEDIATE transaction. What a connection
 * changed is on disk once it is closed or `makeDurable` returns (wal-sync.ts).
 */
export class Store implements LabelMemory, LabelReservations {
  readonly db: Database;
  /** The store file, absolute: a warm worker's command may change its cwd. */
  private readonly file: string;
  /** SQLite's total_changes() when this connection's writes were last known to be on disk. */
  private durableAt = 0;
  /** Host-wide claims (host-claims.ts); null when this process keeps none, undefined until first needed. */
  private claims: HostClaims | null | undefined;
  /** Claims made or dropped in the open transaction, settled if it is rolled back. */
  private claimsTouched: { driver: DriverName; label: string; uuid: string }[] = [];

  private constructor(db: Database, file: string) {
    this.db = db;
    this.file = file;
    shareStatements(db);
    storeOpened(this);
  }

  /** Rows this connection has inserted, updated or deleted since it opened. */
  private changes(): number {
    return (this.db.prepare('SELECT total_changes() AS n').get() as { n: number }).n;
  }

  /**
   * Brings what this connection changed to disk, off the event loop: `svirt serve` calls it
   * before a changing call replies. A connection that changed nothing does nothing.
   */
  async makeDurable(): Promise<void> {
    if (!this.db.open) return;
    const n = this.changes();
    if (n === this.durableAt) return;
    await syncWalAsync(this.file);
    this.durableAt = Math.max(this.durableAt, n);
  }

  /**
   * Brings what this connection committed to disk now, on this thread (a label waits for it):
   * one sync, none when it committed nothing since the last. remember() calls it, and a start's
   * first pass after its rememberUnsynced() calls (SecurityManager.setAllLabel).
   */
  syncRemembered(): void {
    const n = this.changes();
    if (n === this.durableAt) return;
    syncWal(this.file);
    this.durableAt = Math.max(this.durableAt, n);
  }

  /** A guest's rows as they are now, for the word a CLI command sends serve (touched.ts); undefined once closed. */
  private readonly rowsOf = (uuid: string): GuestRows | undefined => {
    if (!this.isOpen) return undefined;
    const running = this.getRunning(uuid);
    const defined = this.getDefinedByUuid(uuid);
    return { ...(running ? { running } : {}), ...(defined ? { defined } : {}) };
  };

  /**
   * The store of a state dir that has one, opened without creating anything; undefined when it
   * has none, even if it went between the check and the open. For cleanups (the monitor's hook,
   * `svirt reconcile`): they must not bring back a state dir that was removed meanwhile.
   */
  static openIfExists(stateDir: string): Store | undefined {
    const file = join(stateDir, 'svirt.db');
    if (!existsSync(file)) return undefined;
    try {
      return Store.open(stateDir, { existing: true });
    } catch (err) {
      if (!existsSync(file)) return undefined;
      throw err;
    }
  }

  /**
   * Opens (creating it and its dir when missing) the store of a state dir. With `existing`, a
   * missing dir or file is SVIRT_ERR_STORE and nothing is created: the monitor's hook must
   * not bring back a state dir that was removed while QEMU exited.
   */
  static open(stateDir: string, opts: { existing?: boolean } = {}): Store {
    try {
      if (opts.existing !== true) mkdirSync(stateDir, { recursive: true, mode: 0o711 });
    } catch (err) {
      throw new SvirtError('SVIRT_ERR_STORE', `cannot create state dir "${stateDir}": ${String(err)}`, { cause: err });
    }
    const file = resolve(stateDir, 'svirt.db');
    let db: Database;
    try {
      db = new Database(file, {
        timeout: 10_000,
        nativeBinding: nativeBinding() as unknown as string,
        fileMustExist: opts.existing === true,
      });
      chmodSync(file, 0o600);
      keepWalAtClose(db);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
      db.pragma('foreign_keys = ON');
      // The schema is created or migrated only when its fingerprint is not the file's: every
      // CLI verb opens the store, and parsing the whole schema again costs ~1 ms (issue 17).
      if (db.pragma('user_version', { simple: true }) !== SCHEMA_FINGERPRINT) {
        db.exec(SCHEMA);
        db.exec(NETWORK_SCHEMA);
        db.exec(ACCESS_SCHEMA);
        migrate(db);
        db.exec(INDEXES);
        db.pragma(`user_version = ${SCHEMA_FINGERPRINT}`);
      }
    } catch (err) {
      throw new SvirtError('SVIRT_ERR_STORE', `cannot open state store "${file}": ${(err as Error).message}`, {
        cause: err,
      });
    }
    return new Store(db, file);
  }

  /** Whether close() has not run (nor SQLite's connection closed otherwise). */
  get isOpen(): boolean {
    return this.db.open;
  }

  /**
   * Closes the connection. When it changed rows, they are on disk when this returns: the close
   * leaves the WAL as it is (keepWalAtClose), and the WAL is synced (wal-sync.ts).
   */
  close(): void {
    storeClosed(this);
    const wrote = this.db.open && this.changes() !== this.durableAt;
    if (this.db.open) settleTouched(this.rowsOf);
    try {
      this.db.close();
    } finally {
      if (wrote) syncWal(this.file);
    }
  }

  /** Runs fn's reads in one deferred transaction: one snapshot of the store, no write lock. */
  snapshot<T>(fn: () => T): T {
    return this.inTx('deferred', fn);
  }

  /** Runs fn in a BEGIN IMMEDIATE transaction (writers serialise; readers go on). */
  tx<T>(fn: () => T): T {
    return this.inTx('immediate', fn);
  }

  /** A transaction; when the outermost one is rolled back, the host-wide claims it touched follow the store back. */
  private inTx<T>(mode: TransactionMode, fn: () => T): T {
    if (this.db.inTransaction) return inTransaction(this.db, mode, fn);
    try {
      return inTransaction(this.db, mode, fn);
    } catch (err) {
      this.settleClaims();
      throw err;
    } finally {
      this.claimsTouched = [];
    }
  }

  // ---- definitions -------------------------------------------------------------------

  getDefinedByName(name: string): DefinedDomain | undefined {
    return this.db.prepare('SELECT uuid, name, xml FROM domains WHERE name = ?').get(name) as DefinedDomain | undefined;
  }

  getDefinedByUuid(uuid: string): DefinedDomain | undefined {
    return this.db.prepare('SELECT uuid, name, xml FROM domains WHERE uuid = ?').get(uuid) as DefinedDomain | undefined;
  }

  listDefined(): DefinedDomain[] {
    return this.db.prepare('SELECT uuid, name, xml FROM domains ORDER BY name').all() as DefinedDomain[];
  }

  /** listDefined() without the XML. */
  listDefinedNames(): DefinedName[] {
    return this.db.prepare(DEFINED_NAMES_SQL).all() as DefinedName[];
  }

  /** Inserts or replaces the definition with this uuid; a name used by another uuid is an error. */
  putDefinition(d: DefinedDomain): void {
    noteTouched(d.uuid, this.rowsOf);
    this.tx(() => {
      const other = this.db
        .prepare(
          'SELECT uuid FROM domains WHERE name = ? AND uuid <> ? UNION SELECT uuid FROM running WHERE name = ? AND uuid <> ?',
        )
        .get(d.name, d.uuid, d.name, d.uuid) as { uuid: string } | undefined;
      if (other !== undefined) {
        throw new SvirtError('SVIRT_ERR_DOMAIN_EXISTS', `domain '${d.name}' already exists with uuid ${other.uuid}`);
      }
      const renamed = this.db.prepare('SELECT name FROM domains WHERE uuid = ? AND name <> ?').get(d.uuid, d.name) as
        { name: string } | undefined;
      if (renamed !== undefined) {
        throw new SvirtError('SVIRT_ERR_DOMAIN_EXISTS', `domain '${renamed.name}' is already defined with uuid ${d.uuid}`);
      }
      this.db
        .prepare(
          'INSERT INTO domains (uuid, name, xml, defined_at) VALUES (?, ?, ?, ?) ' +
            'ON CONFLICT(uuid) DO UPDATE SET xml = excluded.xml',
        )
        .run(d.uuid, d.name, d.xml, Date.now());
      // A running transient guest that gets a definition is persistent from now on (as
      // libvirt's define, and a migration's --persistent): the mirror of undefine below.
      this.db.prepare('UPDATE running SET persistent = 1 WHERE uuid = ?').run(d.uuid);
    });
  }

  deleteDefinition(uuid: string): void {
    noteTouched(uuid, this.rowsOf);
    this.db.prepare('DELETE FROM domains WHERE uuid = ?').run(uuid);
  }

  // ---- running records ---------------------------------------------------------------

  /** Removes a definition; a running guest stays, as a transient one. Returns whether it runs. */
  undefine(uuid: string): boolean {
    return this.tx(() => {
      this.deleteDefinition(uuid);
      const running = this.getRunning(uuid) !== undefined;
      if (running) this.db.prepare('UPDATE running SET persistent = 0 WHERE uuid = ?').run(uuid);
      return running;
    });
  }

  getRunning(uuid: string): RunningRecord | undefined {
    const row = this.db.prepare('SELECT rowid AS id, * FROM running WHERE uuid = ?').get(uuid) as RunningRow | undefined;
    return row === undefined ? undefined : toRecord(row);
  }

  getRunningByName(name: string): RunningRecord | undefined {
    const row = this.db.prepare('SELECT rowid AS id, * FROM running WHERE name = ?').get(name) as RunningRow | undefined;
    return row === undefined ? undefined : toRecord(row);
  }

  listRunning(): RunningRecord[] {
    return (this.db.prepare('SELECT rowid AS id, * FROM running ORDER BY started_at, name').all() as RunningRow[]).map(toRecord);
  }

  /** Every running record as reconcile checks it (RunningCheck), one query. */
  runningChecks(): RunningCheck[] {
    return this.db.prepare(RUNNING_CHECKS_SQL).all() as RunningCheck[];
  }

  /** listRunning()'s order, with only what `list` shows. */
  listRunningListed(): RunningListed[] {
    return this.db.prepare(RUNNING_LISTED_SQL).all() as RunningListed[];
  }

  /** The uuids that hold a reservation but have no running record: orphans' (orphans.ts). */
  reservedNotRunning(): string[] {
    return this.db
      .prepare('SELECT DISTINCT uuid FROM reservations WHERE uuid NOT IN (SELECT uuid FROM running)')
      .pluck()
      .all() as string[];
  }

  /** The uuids of every running record, without decoding the records. */
  runningUuids(): Set<string> {
    return new Set(this.db.prepare('SELECT uuid FROM running').pluck().all() as string[]);
  }

  /** Claims a guest for starting; false when a record exists already (running or busy). */
  insertStarting(
    r: Omit<RunningRecord, 'id' | 'state' | 'pid' | 'pidStart' | 'monitorPid' | 'paused' | 'pending' | 'helpers'>,
  ): boolean {
    const res = this.db
      .prepare(
        `INSERT OR IGNORE INTO running (uuid, name, state, owner_pid, owner_start, runtime_dir, qmp_path, live_xml,
           persistent, stack, resources, paused, started_at)
         VALUES (?, ?, 'starting', ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)`,
      )
      .run(
        r.uuid,
        r.name,
        r.ownerPid,
        r.ownerStart,
        r.runtimeDir,
        r.qmpPath,
        r.liveXml,
        r.persistent ? 1 : 0,
        JSON.stringify(r.stack),
        serializeResources(r.resources),
        r.startedAt,
      );
    if (res.changes === 1) noteTouched(r.uuid, this.rowsOf);
    return res.changes === 1;
  }

  updateRunning(
    uuid: string,
    fields: Partial<
      Pick<RunningRecord, 'liveXml' | 'resources' | 'pid' | 'pidStart' | 'monitorPid' | 'paused' | 'stack' | 'helpers'>
    >,
  ): void {
    const map: Record<string, string> = {
      liveXml: 'live_xml',
      resources: 'resources',
      pid: 'pid',
      pidStart: 'pid_start',
      monitorPid: 'monitor_pid',
      paused: 'paused',
      stack: 'stack',
      helpers: 'helpers',
    };
    const sets: string[] = [];
    const values: unknown[] = [];
    for (const [k, v] of Object.entries(fields)) {
      const col = map[k];
      if (col === undefined || v === undefined) continue;
      sets.push(`${col} = ?`);
      values.push(
        typeof v === 'boolean'
          ? v
            ? 1
            : 0
          : k === 'resources'
            ? serializeResources(v as GuestResource[])
            : Array.isArray(v)
              ? JSON.stringify(v)
              : v,
      );
    }
    if (sets.length === 0) return;
    noteTouched(uuid, this.rowsOf);
    this.db.prepare(`UPDATE running SET ${sets.join(', ')} WHERE uuid = ?`).run(...values, uuid);
  }

  /** Moves a record to a new state, owned by `owner` (or by nobody). Returns false if the record is gone. */
  setRunState(uuid: string, state: RunState, owner: { pid: number; startTime: number } | null, from?: RunState): boolean {
    const sql = 'UPDATE running SET state = ?, owner_pid = ?, owner_start = ? WHERE uuid = ?' + (from ? ' AND state = ?' : '');
    const args: unknown[] = [state, owner?.pid ?? null, owner?.startTime ?? null, uuid];
    if (from) args.push(from);
    noteTouched(uuid, this.rowsOf);
    return this.db.prepare(sql).run(...args).changes === 1;
  }

  /**
   * Journals an operation on a running guest, owned by `owner`. False when another live
   * operation holds the guest (the caller checks liveness of a stale owner first).
   */
  beginOp(uuid: string, op: PendingOp, owner: { pid: number; startTime: number }): boolean {
    return (
      this.db
        .prepare(
          "UPDATE running SET pending = ?, owner_pid = ?, owner_start = ? WHERE uuid = ? AND state = 'running' AND pending IS NULL",
        )
        .run(opText(op), owner.pid, owner.startTime, uuid).changes === 1
    );
  }

  /** Ends the operation; `fields` (new live XML, resources) land in the same statement. */
  endOp(uuid: string, fields: { liveXml?: string; resources?: readonly GuestResource[] } = {}): void {
    noteTouched(uuid, this.rowsOf);
    this.db
      .prepare(
        'UPDATE running SET pending = NULL, owner_pid = NULL, owner_start = NULL, live_xml = coalesce(?, live_xml), resources = coalesce(?, resources) WHERE uuid = ?',
      )
      .run(fields.liveXml ?? null, fields.resources ? serializeResources(fields.resources) : null, uuid);
  }

  /** Updates the journalled operation (its phase changed: more nodes, fds...). */
  updateOp(uuid: string, op: PendingOp): void {
    this.db.prepare('UPDATE running SET pending = ? WHERE uuid = ?').run(opText(op), uuid);
  }

  /**
   * Leaves a journalled operation (or a starting/stopping record) without an owner after a
   * failure its owner could not repair: the next reconcile repairs it, even while the owner
   * (a long-lived `svirt serve`) lives on.
   */
  abandon(uuid: string): void {
    this.db.prepare('UPDATE running SET owner_pid = NULL, owner_start = NULL WHERE uuid = ?').run(uuid);
  }

  /** Takes over a stale operation whose owner died (for repair). */
  takeOverOp(uuid: string, staleOwnerPid: number | null, owner: { pid: number; startTime: number }): boolean {
    return (
      this.db
        .prepare('UPDATE running SET owner_pid = ?, owner_start = ? WHERE uuid = ? AND pending IS NOT NULL AND owner_pid IS ?')
        .run(owner.pid, owner.startTime, uuid, staleOwnerPid).changes === 1
    );
  }

  deleteRunning(uuid: string): void {
    noteTouched(uuid, this.rowsOf);
    this.db.prepare('DELETE FROM running WHERE uuid = ?').run(uuid);
  }

  // ---- label reservations (LabelReservations) ----------------------------------------

  /**
   * Reserves `label` for `uuid` in this store and, for an identity the kernel sees host-wide,
   * claims it on the host (host-claims.ts) while the write lock is held: false when another
   * guest of this store or of another state dir holds it.
   */
  tryReserve(driver: DriverName, label: string, uuid: string): boolean {
    const claims = HostClaims.applies(driver, label) ? this.hostClaims() : undefined;
    const insert = (): boolean =>
      this.db.prepare('INSERT OR IGNORE INTO reservations (driver, label, uuid) VALUES (?, ?, ?)').run(driver, label, uuid)
        .changes === 1;
    // Nothing to claim on the host: the row alone, as atomic as it is.
    if (claims === undefined) return insert() || this.ownHolder(driver, label) === uuid;
    return this.tx(() => {
      const inserted = insert();
      if (!inserted && this.ownHolder(driver, label) !== uuid) return false;
      this.claimsTouched.push({ driver, label, uuid });
      if (claims.claim(driver, label, uuid).ok) return true;
      // Held by a guest of another state dir. A reservation this store had before (a guest
      // running since before claims were kept, or since /run was emptied) stays its guest's.
      if (!inserted) return true;
      this.db.prepare('DELETE FROM reservations WHERE driver = ? AND label = ? AND uuid = ?').run(driver, label, uuid);
      return false;
    });
  }

  /** The guest holding `label`: its uuid in this store, else a description of a holder in another state dir. */
  holder(driver: DriverName, label: string): string | undefined {
    return this.ownHolder(driver, label) ?? this.hostClaims()?.foreignHolder(driver, label);
  }

  private ownHolder(driver: DriverName, label: string): string | undefined {
    const row = this.db.prepare('SELECT uuid FROM reservations WHERE driver = ? AND label = ?').get(driver, label) as
      { uuid: string } | undefined;
    return row?.uuid;
  }

  /** The host-wide claims, for root (only root runs the drivers that reserve); made when first needed. */
  private hostClaims(): HostClaims | undefined {
    if (this.claims === undefined) {
      this.claims = process.getuid?.() === 0 ? new HostClaims(claimDirFromEnv(), realpathSync(dirname(this.file))) : null;
    }
    return this.claims ?? undefined;
  }

  /**
   * After a rolled-back transaction: each claim it made or dropped is made to match the store
   * again (under the write lock). A failure here is reported, never in place of the first error.
   */
  private settleClaims(): void {
    const claims = this.claims;
    const touched = this.claimsTouched;
    this.claimsTouched = [];
    if (!claims || touched.length === 0 || !this.db.open) return;
    try {
      inTransaction(this.db, 'immediate', () => {
        for (const t of touched) {
          const holder = this.ownHolder(t.driver, t.label);
          if (holder === undefined) claims.drop(t.driver, t.label, t.uuid);
          else if (!claims.claim(t.driver, t.label, holder).ok) {
            process.stderr.write(
              `svirt: warning: ${t.driver} label ${t.label} of guest ${holder} is claimed by another state dir\n`,
            );
          }
        }
      });
    } catch (err) {
      process.stderr.write(`svirt: warning: cannot put the host-wide label claims back: ${(err as Error).message}\n`);
    }
  }

  /** Removes this state dir's host-wide claims its store no longer backs (`svirt reconcile`). */
  sweepClaims(): string[] {
    const claims = this.hostClaims();
    if (claims === undefined) return [];
    return this.tx(() => claims.sweep((driver, label) => this.ownHolder(driver, label)));
  }

  count(driver: DriverName): number {
    return (this.db.prepare('SELECT count(*) AS n FROM reservations WHERE driver = ?').get(driver) as { n: number }).n;
  }

  /** Labels a driver holds, for allocators that scan for a free one. */
  reservedLabels(driver: DriverName): string[] {
    return (this.db.prepare('SELECT label FROM reservations WHERE driver = ?').all(driver) as { label: string }[]).map(
      (r) => r.label,
    );
  }

  /**
   * A TCP port for a guest's display, held in the reservations table so it goes with the
   * guest's labels at stop, cleanup and reconcile. False when another guest holds it.
   */
  tryReservePort(port: number, uuid: string): boolean {
    const res = this.db
      .prepare('INSERT OR IGNORE INTO reservations (driver, label, uuid) VALUES (?, ?, ?)')
      .run(PORT_RESERVATION, String(port), uuid);
    return res.changes === 1 || this.portHolder(port) === uuid;
  }

  /** The guest holding a display port, if any. */
  portHolder(port: number): string | undefined {
    const row = this.db
      .prepare('SELECT uuid FROM reservations WHERE driver = ? AND label = ?')
      .get(PORT_RESERVATION, String(port)) as { uuid: string } | undefined;
    return row?.uuid;
  }

  /** Every display port a guest holds, with the guest's uuid. */
  heldPorts(): Map<number, string> {
    const rows = this.db.prepare('SELECT label, uuid FROM reservations WHERE driver = ?').all(PORT_RESERVATION) as {
      label: string;
      uuid: string;
    }[];
    return new Map(rows.map((r) => [Number(r.label), r.uuid]));
  }

  /** Releases every label of the guest, and its host-wide claims under the same write lock. */
  releaseReservations(uuid: string): void {
    const release = (): void => void this.db.prepare('DELETE FROM reservations WHERE uuid = ?').run(uuid);
    const claims = this.hostClaims();
    if (claims === undefined) return release();
    this.tx(() => {
      const rows = this.reservationsOf(uuid);
      release();
      for (const r of rows) {
        if (!HostClaims.applies(r.driver, r.label)) continue;
        this.claimsTouched.push({ driver: r.driver, label: r.label, uuid });
        claims.drop(r.driver, r.label, uuid);
      }
    });
  }

  reservationsOf(uuid: string): { driver: DriverName; label: string }[] {
    return this.db.prepare('SELECT driver, label FROM reservations WHERE uuid = ?').all(uuid) as {
      driver: DriverName;
      label: string;
    }[];
  }

  // ---- remembered originals (LabelMemory) --------------------------------------------

  /**
   * Keeps `path`'s first original, and that `uuid` uses it, on disk before this returns: the
   * caller labels the file next, and a power cut after the label must not find a guest's owner
   * or label on a file with no original to give back (docs/lifecycle.md). One sync of the WAL
   * when a row was added, which also brings every earlier commit of this connection (the
   * guest's claim, its journal) to disk; a repeat adds nothing and syncs nothing.
   */
  remember(driver: DriverName, path: string, uuid: string, original: string): string {
    const { inForce, added } = this.keepOriginal(driver, path, uuid, original);
    if (added) this.syncRemembered();
    return inForce;
  }

  /**
   * remember() without the sync, for a start's first pass (SecurityManager.setAllLabel): it
   * records every original, then syncRemembered() brings them to disk at once, before any
   * label. True when it added `uuid`'s use of `path`.
   */
  rememberUnsynced(driver: DriverName, path: string, uuid: string, original: string): boolean {
    return this.keepOriginal(driver, path, uuid, original).ownUse;
  }

  private keepOriginal(
    driver: DriverName,
    path: string,
    uuid: string,
    original: string,
  ): { inForce: string; added: boolean; ownUse: boolean } {
    if (this.db.inTransaction) {
      // Its rows would reach the disk only at the outer commit, after the label.
      throw new SvirtError('SVIRT_ERR_INTERNAL', `the original of "${path}" cannot be remembered inside a transaction`);
    }
    return this.tx(() => {
      const kept = this.db
        .prepare('INSERT OR IGNORE INTO remembered (driver, path, original) VALUES (?, ?, ?)')
        .run(driver, path, original).changes;
      const used = this.db
        .prepare('INSERT OR IGNORE INTO remembered_users (driver, path, uuid) VALUES (?, ?, ?)')
        .run(driver, path, uuid).changes;
      const row = this.db.prepare('SELECT original FROM remembered WHERE driver = ? AND path = ?').get(driver, path) as {
        original: string;
      };
      return { inForce: row.original, added: kept + used > 0, ownUse: used > 0 };
    });
  }

  recall(driver: DriverName, path: string): { original: string; users: string[] } | undefined {
    const row = this.db.prepare('SELECT original FROM remembered WHERE driver = ? AND path = ?').get(driver, path) as
      { original: string } | undefined;
    if (row === undefined) return undefined;
    const users = (
      this.db.prepare('SELECT uuid FROM remembered_users WHERE driver = ? AND path = ?').all(driver, path) as {
        uuid: string;
      }[]
    ).map((u) => u.uuid);
    return { original: row.original, users };
  }

  release(driver: DriverName, path: string, uuid: string): string | undefined {
    return this.tx(() => {
      this.db.prepare('DELETE FROM remembered_users WHERE driver = ? AND path = ? AND uuid = ?').run(driver, path, uuid);
      const left = this.db
        .prepare('SELECT count(*) AS n FROM remembered_users WHERE driver = ? AND path = ?')
        .get(driver, path) as { n: number };
      if (left.n > 0) return undefined;
      const row = this.db.prepare('SELECT original FROM remembered WHERE driver = ? AND path = ?').get(driver, path) as
        { original: string } | undefined;
      return row?.original;
    });
  }

  forget(driver: DriverName, path: string): void {
    this.tx(() => {
      const left = this.db
        .prepare('SELECT count(*) AS n FROM remembered_users WHERE driver = ? AND path = ?')
        .get(driver, path) as { n: number };
      // Another guest took the path again between release and forget: keep its original.
      if (left.n === 0) this.db.prepare('DELETE FROM remembered WHERE driver = ? AND path = ?').run(driver, path);
    });
  }

  /** Paths a guest still holds (for checks and repair). */
  rememberedBy(uuid: string): { driver: DriverName; path: string }[] {
    return this.db.prepare('SELECT driver, path FROM remembered_users WHERE uuid = ?').all(uuid) as {
      driver: DriverName;
      path: string;
    }[];
  }

  /** Every remembered path (any guest), for tests and `svirt` diagnostics. */
  allRemembered(): { driver: DriverName; path: string; original: string }[] {
    return this.db.prepare('SELECT driver, path, original FROM remembered').all() as {
      driver: DriverName;
      path: string;
      original: string;
    }[];
  }
}

/** A journal entry as stored: its resources in their stored form. */
function opText(op: PendingOp): string {
  return JSON.stringify(op.resources ? { ...op, resources: toStored(op.resources) } : op);
}
