/**
 * The store's snapshot table: one row per snapshot of a guest (by uuid), the record as JSON,
 * and which one is current. Made the first time a snapshot command opens it, so verbs that
 * never touch snapshots pay nothing.
 */
import type { Database } from 'better-sqlite3';
import { inTransaction } from '../../store/transaction.js';
import type { SnapshotRecord } from './snapshot-xml.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS domain_snapshots (
  domain_uuid TEXT NOT NULL,
  name TEXT NOT NULL,
  record TEXT NOT NULL,
  current INTEGER NOT NULL DEFAULT 0,
  seq INTEGER NOT NULL,
  PRIMARY KEY (domain_uuid, name)
);
`;

interface Row {
  name: string;
  record: string;
  current: number;
}

export class SnapshotStore {
  constructor(private readonly db: Database) {
    db.exec(SCHEMA);
  }

  /** Every snapshot of a guest, oldest first. */
  list(uuid: string): SnapshotRecord[] {
    const rows = this.db.prepare('SELECT record FROM domain_snapshots WHERE domain_uuid = ? ORDER BY seq').all(uuid) as Row[];
    return rows.map((r) => JSON.parse(r.record) as SnapshotRecord);
  }

  get(uuid: string, name: string): SnapshotRecord | undefined {
    const r = this.db.prepare('SELECT record FROM domain_snapshots WHERE domain_uuid = ? AND name = ?').get(uuid, name) as
      Row | undefined;
    return r && (JSON.parse(r.record) as SnapshotRecord);
  }

  current(uuid: string): string | undefined {
    const r = this.db.prepare('SELECT name FROM domain_snapshots WHERE domain_uuid = ? AND current = 1').get(uuid) as
      Row | undefined;
    return r?.name;
  }

  /** Adds a snapshot and makes it current. */
  add(uuid: string, s: SnapshotRecord): void {
    inTransaction(this.db, 'immediate', () => {
      const seq = (this.db.prepare('SELECT COALESCE(MAX(seq), 0) + 1 AS n FROM domain_snapshots').get() as { n: number }).n;
      this.db.prepare('UPDATE domain_snapshots SET current = 0 WHERE domain_uuid = ?').run(uuid);
      this.db
        .prepare('INSERT INTO domain_snapshots (domain_uuid, name, record, current, seq) VALUES (?, ?, ?, 1, ?)')
        .run(uuid, s.name, JSON.stringify(s), seq);
    });
  }

  setCurrent(uuid: string, name: string | undefined): void {
    inTransaction(this.db, 'immediate', () => {
      this.db.prepare('UPDATE domain_snapshots SET current = 0 WHERE domain_uuid = ?').run(uuid);
      if (name !== undefined)
        this.db.prepare('UPDATE domain_snapshots SET current = 1 WHERE domain_uuid = ? AND name = ?').run(uuid, name);
    });
  }

  /** Removes one snapshot; its children get its parent (libvirt's re-parenting), current moves to the parent. */
  remove(uuid: string, s: SnapshotRecord): void {
    inTransaction(this.db, 'immediate', () => {
      const wasCurrent = this.current(uuid) === s.name;
      for (const child of this.list(uuid).filter((c) => c.parent === s.name)) {
        const { parent: _, ...rest } = child;
        const moved: SnapshotRecord = s.parent === undefined ? rest : { ...rest, parent: s.parent };
        this.db
          .prepare('UPDATE domain_snapshots SET record = ? WHERE domain_uuid = ? AND name = ?')
          .run(JSON.stringify(moved), uuid, child.name);
      }
      this.db.prepare('DELETE FROM domain_snapshots WHERE domain_uuid = ? AND name = ?').run(uuid, s.name);
      if (wasCurrent && s.parent !== undefined) this.setCurrent(uuid, s.parent);
    });
  }
}
