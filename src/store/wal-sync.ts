/**
 * A command's writes are on disk when it says it is done.
 *
 * The store runs `synchronous = NORMAL` in WAL mode: a commit appends to `svirt.db-wal` and
 * syncs nothing; SQLite syncs the WAL only when it checkpoints. svirt's connections do not
 * checkpoint at their close (store.ts, keepWalAtClose: a checkpoint is four syncs and two
 * unlinks a command), and a connection that is not the last one open never did: with
 * `svirt serve` or a second command holding the store, what a verb wrote sat in the page cache
 * until some later checkpoint, and `define` answered "defined" for a definition that a power
 * cut could take back.
 *
 * So a connection that changed rows syncs the WAL file itself once it is done: after its close
 * (the CLI, the warm worker) or before a changing call replies (`svirt serve`). `fdatasync`
 * on any fd of the file flushes it; the WAL's frames carry checksums, and a later open takes up
 * every complete commit in it. Whatever a checkpoint already moved into `svirt.db` was synced
 * there before SQLite lets the WAL start over, so the frames are on disk in one file or the
 * other. Where no WAL is left (a close that checkpointed: the addon not built, or another
 * program's last connection) there is nothing to do (one lstat). In serve only the sync waits
 * off the event loop; the lstat, open and fstat of a file in the state dir are not worth a trip
 * to the thread pool.
 */
import { closeSync, constants, fdatasync, fdatasyncSync, fstatSync, lstatSync, openSync } from 'node:fs';
import { SvirtError } from '../errors.js';

// libuv opens every fd close-on-exec.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** The WAL of a store file, where SQLite keeps it. */
function walOf(dbFile: string): string {
  return `${dbFile}-wal`;
}

/**
 * The WAL's fd, or undefined when there is none (the last close checkpointed and removed it).
 * Looked for before it is opened: a thrown ENOENT is ~1 ms in a fresh process (docs/startup.md),
 * and no WAL is the usual case of a command alone on its store.
 */
function openWal(dbFile: string): number | undefined {
  if (!lstatSync(walOf(dbFile), { throwIfNoEntry: false })) return undefined;
  let fd: number;
  try {
    fd = openSync(walOf(dbFile), OPEN_FLAGS);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // gone since the look
    throw failed(dbFile, err);
  }
  try {
    if (!fstatSync(fd).isFile()) throw new Error('not a regular file');
  } catch (err) {
    closeSync(fd);
    throw failed(dbFile, err);
  }
  return fd;
}

function failed(dbFile: string, err: unknown): SvirtError {
  const why = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
  return new SvirtError('SVIRT_ERR_STORE', `cannot sync "${walOf(dbFile)}" to disk: ${why}`, { cause: err });
}

/** Syncs the store's WAL, when there is one (a command at its end: nothing else runs on its loop). */
export function syncWal(dbFile: string): void {
  const fd = openWal(dbFile);
  if (fd === undefined) return;
  try {
    fdatasyncSync(fd);
  } catch (err) {
    throw failed(dbFile, err);
  } finally {
    closeSync(fd);
  }
}

/** The same off the event loop (`svirt serve`: a sync can take long on a busy disk). */
export async function syncWalAsync(dbFile: string): Promise<void> {
  const fd = openWal(dbFile);
  if (fd === undefined) return;
  try {
    await new Promise<void>((resolve, reject) => fdatasync(fd, (err) => (err ? reject(failed(dbFile, err)) : resolve())));
  } finally {
    closeSync(fd);
  }
}
