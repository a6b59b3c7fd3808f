import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { inTransaction } from './transaction.js';

function table(): Database.Database {
  const db = new Database(':memory:');
  db.exec('CREATE TABLE t (v INTEGER PRIMARY KEY)');
  return db;
}

const values = (db: Database.Database): number[] =>
  (db.prepare('SELECT v FROM t ORDER BY v').all() as { v: number }[]).map((r) => r.v);
const insert = (db: Database.Database, v: number): void => void db.prepare('INSERT INTO t (v) VALUES (?)').run(v);

describe('inTransaction', () => {
  it('commits what the function did and returns its result', () => {
    const db = table();
    assert.equal(
      inTransaction(db, 'immediate', () => {
        insert(db, 1);
        assert.equal(db.inTransaction, true);
        return 'done';
      }),
      'done',
    );
    assert.equal(db.inTransaction, false);
    assert.deepEqual(values(db), [1]);
  });

  it('undoes everything and throws the error when the function throws', () => {
    const db = table();
    insert(db, 1);
    assert.throws(
      () =>
        inTransaction(db, 'deferred', () => {
          insert(db, 2);
          throw new Error('boom');
        }),
      /boom/,
    );
    assert.equal(db.inTransaction, false);
    assert.deepEqual(values(db), [1]);
  });

  it('runs a nested one as a savepoint: its failure undoes its own part only', () => {
    const db = table();
    inTransaction(db, 'immediate', () => {
      insert(db, 1);
      assert.throws(() =>
        inTransaction(db, 'immediate', () => {
          insert(db, 2);
          insert(db, 1); // a constraint error
        }),
      );
      assert.equal(db.inTransaction, true, 'the outer one goes on');
      inTransaction(db, 'immediate', () => insert(db, 3));
    });
    assert.deepEqual(values(db), [1, 3]);
  });

  it('undoes a nested one that succeeded when the outer one fails', () => {
    const db = table();
    assert.throws(() =>
      inTransaction(db, 'immediate', () => {
        inTransaction(db, 'immediate', () => insert(db, 1));
        throw new Error('outer');
      }),
    );
    assert.deepEqual(values(db), []);
  });

  it('refuses a function that returns a promise, and keeps nothing of it', () => {
    const db = table();
    assert.throws(
      () =>
        inTransaction(db, 'immediate', () => {
          insert(db, 1);
          return Promise.resolve();
        }),
      /returns a promise/,
    );
    assert.equal(db.inTransaction, false);
    assert.deepEqual(values(db), []);
  });

  it('takes the write lock at once in immediate mode, and not in deferred mode', () => {
    const dir = mkdtempSync(join(tmpdir(), 'svirt-tx-'));
    const a = new Database(join(dir, 's.db'));
    a.pragma('journal_mode = WAL');
    a.exec('CREATE TABLE t (v INTEGER PRIMARY KEY)');
    const b = new Database(join(dir, 's.db'), { timeout: 0 });
    try {
      inTransaction(a, 'deferred', () => {
        a.prepare('SELECT count(*) FROM t').get();
        insert(b, 1); // a holds no write lock
      });
      inTransaction(a, 'immediate', () => {
        assert.throws(() => insert(b, 2), /locked|busy/i, 'the writer lock is held from BEGIN');
      });
      assert.deepEqual(values(a), [1]);
    } finally {
      a.close();
      b.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
