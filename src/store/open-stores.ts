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
 * Closes every store still open: SQLite checkpoints the WAL into the database and syncs it
 * (with synchronous=NORMAL, durability comes at the checkpoint). A close that fails (a full
 * disk) loses nothing: the WAL keeps every commit, and the next open takes it up.
 */
export function closeOpenStores(): void {
  for (const s of [...OPEN]) {
    try {
      s.close(); // leaves OPEN first (Store.close), whether or not SQLite's close then fails
    } catch {
      // nothing lost: the WAL keeps every commit (above)
    }
  }
}
