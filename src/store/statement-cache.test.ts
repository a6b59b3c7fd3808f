import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type DatabaseType from 'better-sqlite3';
import { MAX_SHARED_STATEMENTS, shareStatements } from './statement-cache.js';
import { Store } from './store.js';

const Database = createRequire(import.meta.url)('better-sqlite3') as typeof DatabaseType;

function memory(): DatabaseType.Database {
  const db = new Database(':memory:');
  shareStatements(db);
  db.exec('CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1), (2), (3)');
  return db;
}

describe('shared statements (statement-cache.ts)', () => {
  it('hands out one statement per SQL text', () => {
    const db = memory();
    const sql = 'SELECT n FROM t WHERE n = ?';
    assert.equal(db.prepare(sql), db.prepare(sql));
    assert.notEqual(db.prepare(sql), db.prepare('SELECT n FROM t WHERE n > ?'));
    assert.deepEqual(db.prepare(sql).get(2), { n: 2 }, 'parameters are bound per call');
    assert.deepEqual(db.prepare(sql).get(3), { n: 3 });
    db.close();
  });

  it('hands a statement out as a fresh one: pluck, raw and expand off', () => {
    const db = memory();
    const sql = 'SELECT n FROM t ORDER BY n';
    assert.deepEqual(db.prepare(sql).pluck().all(), [1, 2, 3]);
    assert.deepEqual(db.prepare(sql).all(), [{ n: 1 }, { n: 2 }, { n: 3 }], 'pluck does not stay on');
    assert.deepEqual(db.prepare(sql).raw().get(), [1]);
    assert.deepEqual(db.prepare(sql).get(), { n: 1 }, 'raw does not stay on');
    assert.deepEqual(db.prepare(sql).expand().get(), { t: { n: 1 } });
    assert.deepEqual(db.prepare(sql).get(), { n: 1 }, 'expand does not stay on');
    const write = db.prepare('INSERT INTO t VALUES (?)');
    assert.equal(db.prepare('INSERT INTO t VALUES (?)'), write, 'a statement that returns no rows is shared too');
    assert.equal(write.run(4).changes, 1);
    db.close();
  });

  it('makes a new statement for a text whose shared one is busy iterating', () => {
    const db = memory();
    const sql = 'SELECT n FROM t ORDER BY n';
    const seen: number[] = [];
    for (const row of db.prepare(sql).iterate() as IterableIterator<{ n: number }>) {
      seen.push(row.n, (db.prepare(sql).pluck().all() as number[]).length);
    }
    assert.deepEqual(seen, [1, 3, 2, 3, 3, 3]);
    db.close();
  });

  it(`stops sharing new texts at ${MAX_SHARED_STATEMENTS}, and still runs them`, () => {
    const db = memory();
    for (let i = 0; i < MAX_SHARED_STATEMENTS; i++) db.prepare(`SELECT ${i} AS i`);
    const past = `SELECT ${MAX_SHARED_STATEMENTS} AS i`;
    assert.notEqual(db.prepare(past), db.prepare(past), 'past the bound, each prepare makes its own');
    assert.deepEqual(db.prepare(past).get(), { i: MAX_SHARED_STATEMENTS });
    assert.equal(db.prepare('SELECT 0 AS i'), db.prepare('SELECT 0 AS i'), 'those made before stay shared');
    db.close();
  });

  it("is each store connection's own", () => {
    const dir = mkdtempSync(join(tmpdir(), 'svirt-stmt-'));
    try {
      const a = Store.open(dir);
      const b = Store.open(dir);
      const sql = 'SELECT count(*) AS n FROM domains';
      assert.equal(a.db.prepare(sql), a.db.prepare(sql));
      assert.notEqual(a.db.prepare(sql), b.db.prepare(sql));
      a.close();
      b.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
