/**
 * A transaction around a synchronous function, as better-sqlite3's `db.transaction(fn)` runs
 * one, without what that costs a short-lived process: its first call on a connection prepares
 * nine statements (BEGIN in four modes, COMMIT, ROLLBACK and three for savepoints), and every
 * call makes four wrapper functions and defines five properties on each. A CLI verb opens one
 * connection and runs a handful of transactions. Here each statement is prepared when first
 * used, through the connection's shared statements (statement-cache.ts).
 *
 * The same rules: a transaction inside another is a savepoint; when `fn` throws, what it did
 * is undone (SQLite may have rolled back already, after a failed COMMIT say: then nothing is
 * left to undo) and the error is thrown; a function that returns a promise is refused, since
 * its awaited part would run outside the transaction.
 */
import type DatabaseType from 'better-sqlite3';

export type TransactionMode = 'deferred' | 'immediate';

const BEGIN: Record<TransactionMode, string> = { deferred: 'BEGIN DEFERRED', immediate: 'BEGIN IMMEDIATE' };
// A name no svirt statement uses; nested savepoints of one name are fine in SQLite.
const SAVEPOINT = 'svirt_nested';

export function inTransaction<T>(db: DatabaseType.Database, mode: TransactionMode, fn: () => T): T {
  const nested = db.inTransaction;
  db.prepare(nested ? `SAVEPOINT ${SAVEPOINT}` : BEGIN[mode]).run();
  try {
    const result = fn();
    if (typeof (result as { then?: unknown } | undefined)?.then === 'function') {
      throw new TypeError('a transaction cannot run a function that returns a promise');
    }
    db.prepare(nested ? `RELEASE ${SAVEPOINT}` : 'COMMIT').run();
    return result;
  } catch (err) {
    if (db.inTransaction) {
      if (nested) {
        db.prepare(`ROLLBACK TO ${SAVEPOINT}`).run();
        db.prepare(`RELEASE ${SAVEPOINT}`).run();
      } else {
        db.prepare('ROLLBACK').run();
      }
    }
    throw err;
  }
}
