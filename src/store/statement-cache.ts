/**
 * One prepared statement per SQL text and connection. Every part of svirt prepares its SQL where
 * it runs it (`db.prepare(sql).get(...)`), and SQLite compiles the text again each time: a fresh
 * `svirt start` prepared 34 statements for 18 texts, `destroy` 31 for 17, at ~60 µs each in a
 * fresh process (issue 17). The connection's `prepare` now hands out the statement it made
 * before for the same text.
 *
 * A shared statement must look fresh to each caller: one that returns rows is handed out with
 * pluck, raw and expand off (a caller that wants pluck asks again, as on a new statement). No
 * caller of svirt binds parameters for good (`.bind`) or iterates (`.iterate`), the two states
 * a statement keeps between calls; a statement busy iterating anyway is not shared, and a new
 * one is made. The texts are svirt's own, a few dozen; the map stops growing at 256 (a text
 * past that is prepared each time, as before).
 */
import type DatabaseType from 'better-sqlite3';

export const MAX_SHARED_STATEMENTS = 256;

export function shareStatements(db: DatabaseType.Database): void {
  const made = new Map<string, DatabaseType.Statement>();
  const prepare = db.prepare.bind(db) as (sql: string) => DatabaseType.Statement;
  const shared = (sql: string): DatabaseType.Statement => {
    const stmt = made.get(sql);
    if (stmt === undefined) {
      const fresh = prepare(sql);
      if (made.size < MAX_SHARED_STATEMENTS) made.set(sql, fresh);
      return fresh;
    }
    if (stmt.busy) return prepare(sql);
    if (stmt.reader) stmt.pluck(false).raw(false).expand(false);
    return stmt;
  };
  Object.defineProperty(db, 'prepare', { value: shared, configurable: true, writable: true });
}
