/**
 * `pools = [...]` in the `[entrypoints]` rules (issue 15's "allowed pools"): a file directly in
 * the directory of an allowed, active storage pool is allowed even where no `allow` tree
 * covers it. The pool's directory is opened (no symlink on the way) and the file is found
 * again through that directory's fd, so a link or a rename between the checks cannot pass
 * another file off as the pool's volume. The floors, `deny`, svirt's own state and the
 * read-only trees still apply.
 */
import { lstatSync, readlinkSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { errnoOf } from '../errors.js';
import { openHandle, type FileHandle } from '../host/file-handle.js';

/** The directory of an active pool by name, or undefined (no such pool, or not active). */
export type PoolPathLookup = (name: string) => string | undefined;

/** The pool a path was admitted through, and its directory's identity. */
export interface PoolAdmission {
  readonly pool: string;
  readonly dir: string;
  readonly dev: number;
  readonly ino: number;
}

/** A pool's directory as the kernel names it (every link resolved), with its identity. */
function openPool(path: string): { real: string; dev: number; ino: number } | undefined {
  let h: FileHandle;
  try {
    h = openHandle(path, 'open the storage pool directory');
  } catch {
    return undefined; // gone or not reachable without a link: it admits nothing
  }
  try {
    if (h.kind !== 'dir') return undefined;
    return { real: readlinkSync(h.procPath), dev: h.stats.dev, ino: h.stats.ino };
  } finally {
    h.close();
  }
}

/** The allowed pool whose directory holds `path` itself (not in a subdirectory), if any. */
export function admitByPool(
  path: string,
  pools: readonly string[],
  lookup: PoolPathLookup | undefined,
): PoolAdmission | undefined {
  if (pools.length === 0 || lookup === undefined) return undefined;
  const parent = dirname(path);
  for (const pool of pools) {
    const dir = lookup(pool);
    if (dir === undefined) continue;
    const opened = openPool(dir);
    if (opened !== undefined && opened.real === parent) return { pool, dir: opened.real, dev: opened.dev, ino: opened.ino };
  }
  return undefined;
}

/**
 * Whether the opened file is still the pool's: the pool directory, opened again, is the one
 * admitted, and its entry of that name (not followed) is the very file svirt holds.
 */
export function stillInPool(a: PoolAdmission, path: string, h: FileHandle): string | undefined {
  let dir: FileHandle;
  try {
    dir = openHandle(a.dir, 'open the storage pool directory');
  } catch (err) {
    return `the directory of pool '${a.pool}' cannot be opened (${errnoOf(err) ?? String(err)})`;
  }
  try {
    if (dir.stats.dev !== a.dev || dir.stats.ino !== a.ino) return `the directory of pool '${a.pool}' changed while svirt looked`;
    let st;
    try {
      st = lstatSync(`${dir.procPath}/${basename(path)}`);
    } catch (err) {
      return `it is no longer in pool '${a.pool}' (${errnoOf(err) ?? String(err)})`;
    }
    if (st.dev !== h.stats.dev || st.ino !== h.stats.ino) return `pool '${a.pool}' holds another file at that name`;
    return undefined;
  } finally {
    dir.close();
  }
}
