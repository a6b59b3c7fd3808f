/**
 * The stores this process has open, so that the CLI can close them when its command is done
 * (bin/svirt.js, then process.exit). No imports: a bundle's entry re-exports closeOpenStores
 * without loading the store itself.
 */
const OPEN = new Set<{ close(): void }>();

export function storeOpened(s: { close(): void }): void {
  OPEN.add(s);
}

export function storeClosed(s: { close(): void }): void {
  OPEN.delete(s);
}

/**
 * Closes every store still open. A store that changed rows has them on disk once closed: SQLite
 * checkpoints and syncs at the last connection's close, and Store.close syncs the WAL when
 * another connection kept it (wal-sync.ts). A close that fails (a full disk) loses nothing
 * as long as the WAL is synced: it keeps every commit, and the next open takes them up. A WAL
 * that could not be synced is said on stderr, since the command's change may not survive a
 * power cut; the command's own answer and status stand (its change is made).
 */
export function closeOpenStores(): void {
  for (const s of [...OPEN]) {
    try {
      s.close(); // leaves OPEN first (Store.close), whether or not SQLite's close then fails
    } catch (err) {
      const e = err as { code?: unknown; message?: unknown };
      if (e.code === 'SVIRT_ERR_STORE')
        process.stderr.write(`warning: ${String(e.message)}; the change is made, but may not survive a power cut\n`);
    }
  }
}
