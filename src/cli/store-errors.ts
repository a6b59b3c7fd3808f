/**
 * SQLite failures of the store in words a user can act on: a full disk, a damaged file, a
 * file that is not a database. Everything else keeps its own message.
 */
import { statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { SvirtError } from '../errors.js';

/** The SQLITE_* code of `err` or of an error in its cause chain (better-sqlite3's SqliteError). */
function sqliteCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('SQLITE_')) return code;
  }
  return undefined;
}

/** Under 1 MiB left to this user where the store lives: SQLite's write (or its -shm) failed for room. */
function diskFull(dir: string): boolean {
  try {
    const st = statfsSync(dir);
    const free = (process.getuid?.() === 0 ? st.bfree : st.bavail) * st.bsize;
    return free < 1024 * 1024;
  } catch {
    return false; // cannot tell: say what SQLite said
  }
}

/** `err` as a one-line store error naming `dbPath`, or undefined if it is not a SQLite failure. */
export function storeFailure(err: unknown, dbPath: string): SvirtError | undefined {
  const code = sqliteCode(err);
  if (code === undefined) return undefined;
  const fail = (what: string, why: string): SvirtError =>
    new SvirtError('SVIRT_ERR_STORE', `cannot ${what} the store "${dbPath}": ${why} (${code})`, {
      details: { path: dbPath, sqlite: code },
      cause: err,
    });
  if (code === 'SQLITE_FULL' || (code.startsWith('SQLITE_IOERR') && diskFull(dirname(dbPath)))) {
    return fail('write', 'the disk is full');
  }
  if (code.startsWith('SQLITE_CORRUPT')) return fail('read', 'it is corrupted');
  if (code === 'SQLITE_NOTADB') return fail('open', 'it is not an SQLite database');
  if (code.startsWith('SQLITE_READONLY')) return fail('write', 'it is read-only');
  if (code.startsWith('SQLITE_IOERR')) return fail('use', 'I/O error');
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return fail('use', 'another process holds it locked');
  if (code.startsWith('SQLITE_CANTOPEN')) return fail('open', 'SQLite cannot open it');
  return undefined;
}
