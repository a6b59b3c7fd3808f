/**
 * The store's storage tables: pool definitions (whether each is active, autostart) and the
 * declared format of every volume svirt created or was told about. The tables are made the
 * first time a storage command opens them, so verbs that never touch storage pay nothing.
 */
import type { Database } from 'better-sqlite3';

const POOL_SCHEMA = `
CREATE TABLE IF NOT EXISTS storage_pools (
  uuid TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  xml TEXT NOT NULL,
  autostart INTEGER NOT NULL DEFAULT 0,
  active INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS storage_volumes (
  pool TEXT NOT NULL,
  name TEXT NOT NULL,
  format TEXT NOT NULL CHECK (format IN ('raw', 'qcow2')),
  dev INTEGER NOT NULL,
  ino INTEGER NOT NULL,
  PRIMARY KEY (pool, name)
);
`;

export interface StoredPool {
  readonly uuid: string;
  readonly name: string;
  readonly xml: string;
  readonly autostart: boolean;
  readonly active: boolean;
}

interface PoolRow {
  uuid: string;
  name: string;
  xml: string;
  autostart: number;
  active: number;
}

/** A volume's declared format, valid for the file (device + inode) it was declared for. */
export interface StoredVolume {
  readonly format: 'raw' | 'qcow2';
  readonly dev: number;
  readonly ino: number;
}

function toPool(r: PoolRow): StoredPool {
  return { uuid: r.uuid, name: r.name, xml: r.xml, autostart: r.autostart === 1, active: r.active === 1 };
}

export class PoolStore {
  constructor(private readonly db: Database) {
    db.exec(POOL_SCHEMA);
  }

  list(): StoredPool[] {
    return (this.db.prepare('SELECT * FROM storage_pools ORDER BY name').all() as PoolRow[]).map(toPool);
  }

  byName(name: string): StoredPool | undefined {
    const r = this.db.prepare('SELECT * FROM storage_pools WHERE name = ?').get(name) as PoolRow | undefined;
    return r && toPool(r);
  }

  byUuid(uuid: string): StoredPool | undefined {
    const r = this.db.prepare('SELECT * FROM storage_pools WHERE uuid = ?').get(uuid) as PoolRow | undefined;
    return r && toPool(r);
  }

  put(uuid: string, name: string, xml: string): void {
    this.db
      .prepare(
        'INSERT INTO storage_pools (uuid, name, xml) VALUES (?, ?, ?) ON CONFLICT (uuid) DO UPDATE SET name = excluded.name, xml = excluded.xml',
      )
      .run(uuid, name, xml);
  }

  delete(uuid: string): void {
    this.db.prepare('DELETE FROM storage_volumes WHERE pool = ?').run(uuid);
    this.db.prepare('DELETE FROM storage_pools WHERE uuid = ?').run(uuid);
  }

  setActive(uuid: string, on: boolean): void {
    this.db.prepare('UPDATE storage_pools SET active = ? WHERE uuid = ?').run(on ? 1 : 0, uuid);
  }

  setAutostart(uuid: string, on: boolean): void {
    this.db.prepare('UPDATE storage_pools SET autostart = ? WHERE uuid = ?').run(on ? 1 : 0, uuid);
  }

  volume(pool: string, name: string): StoredVolume | undefined {
    return this.db.prepare('SELECT format, dev, ino FROM storage_volumes WHERE pool = ? AND name = ?').get(pool, name) as
      StoredVolume | undefined;
  }

  putVolume(pool: string, name: string, v: StoredVolume): void {
    this.db
      .prepare(
        'INSERT INTO storage_volumes (pool, name, format, dev, ino) VALUES (?, ?, ?, ?, ?) ON CONFLICT (pool, name) DO UPDATE SET format = excluded.format, dev = excluded.dev, ino = excluded.ino',
      )
      .run(pool, name, v.format, v.dev, v.ino);
  }

  deleteVolume(pool: string, name: string): void {
    this.db.prepare('DELETE FROM storage_volumes WHERE pool = ? AND name = ?').run(pool, name);
  }
}
