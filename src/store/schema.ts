/** The store's schema; every statement is idempotent so opening an existing store is safe. */
export const SCHEMA = `
CREATE TABLE IF NOT EXISTS domains (
  uuid TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  xml TEXT NOT NULL,
  defined_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS running (
  uuid TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  state TEXT NOT NULL CHECK (state IN ('starting', 'running', 'stopping')),
  pid INTEGER,
  pid_start INTEGER,
  monitor_pid INTEGER,
  owner_pid INTEGER,
  owner_start INTEGER,
  runtime_dir TEXT NOT NULL,
  qmp_path TEXT NOT NULL,
  live_xml TEXT NOT NULL,
  persistent INTEGER NOT NULL,
  stack TEXT NOT NULL,
  resources TEXT NOT NULL,
  paused INTEGER NOT NULL DEFAULT 0,
  started_at INTEGER NOT NULL,
  pending TEXT,
  helpers TEXT
);
CREATE TABLE IF NOT EXISTS reservations (
  driver TEXT NOT NULL,
  label TEXT NOT NULL,
  uuid TEXT NOT NULL,
  PRIMARY KEY (driver, label)
);
CREATE INDEX IF NOT EXISTS reservations_by_uuid ON reservations (uuid);
CREATE TABLE IF NOT EXISTS remembered (
  driver TEXT NOT NULL,
  path TEXT NOT NULL,
  original TEXT NOT NULL,
  PRIMARY KEY (driver, path)
);
CREATE TABLE IF NOT EXISTS remembered_users (
  driver TEXT NOT NULL,
  path TEXT NOT NULL,
  uuid TEXT NOT NULL,
  PRIMARY KEY (driver, path, uuid)
);
CREATE INDEX IF NOT EXISTS remembered_users_by_uuid ON remembered_users (uuid);
`;

/** Network objects and the taps of running guests (src/store/networks.ts). */
export const NETWORK_SCHEMA = `
CREATE TABLE IF NOT EXISTS networks (
  uuid TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  xml TEXT NOT NULL,
  autostart INTEGER NOT NULL DEFAULT 0,
  active TEXT
);
CREATE TABLE IF NOT EXISTS guest_taps (
  uuid TEXT NOT NULL,
  name TEXT NOT NULL,
  ifindex INTEGER NOT NULL,
  netns INTEGER NOT NULL,
  bridge TEXT NOT NULL,
  network TEXT,
  PRIMARY KEY (uuid, name)
);
CREATE TABLE IF NOT EXISTS network_starts (
  uuid TEXT PRIMARY KEY,
  owner_pid INTEGER NOT NULL,
  owner_start INTEGER NOT NULL,
  progress TEXT
);
`;

/** Access control (src/access/audit.ts): the owners of guests and the append-only audit trail. */
export const ACCESS_SCHEMA = `
CREATE TABLE IF NOT EXISTS domain_owners (
  uuid TEXT PRIMARY KEY,
  uid INTEGER NOT NULL,
  gid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  gid INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  context TEXT,
  via TEXT NOT NULL,
  guest TEXT,
  uuid TEXT,
  op TEXT NOT NULL,
  permission TEXT,
  labels TEXT,
  allowed INTEGER NOT NULL,
  result TEXT NOT NULL,
  why TEXT
);
CREATE INDEX IF NOT EXISTS audit_by_guest ON audit (guest, seq);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
`;
