import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readSync,
  rmdirSync,
  rmSync,
  unlinkSync,
  type Stats,
} from 'node:fs';
import { join } from 'node:path';
import { SvirtError, errnoOf } from '../errors.js';

/**
 * Opens `path` without following a symlink in its last component and hands the fd to fn.
 * Sockets cannot be opened: fn gets fd -1 and the lstat result instead.
 */
export function withNoFollow<T>(path: string, fn: (fd: number, st: Stats) => T, what = 'open'): T {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === 'ENXIO') {
      // A UNIX socket: lstat does not follow links either.
      const st = lstatSync(path);
      if (st.isSocket()) return fn(-1, st);
    }
    if (errno === 'ELOOP') {
      throw new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot ${what} "${path}": it is a symbolic link`, {
        details: { path, errno },
        cause: err,
      });
    }
    throw new SvirtError('SVIRT_ERR_HOST', `cannot ${what} "${path}": ${errno ?? String(err)}`, {
      details: { path, errno },
      cause: err,
    });
  }
  try {
    return fn(fd, fstatSync(fd));
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads what is left of an open file, at most `max` bytes: one byte more means the file grew
 * past its checked size (or lied about it), and `tooBig` is called, which must throw.
 */
export function readCapped(fd: number, max: number, tooBig: () => never): Buffer {
  const buf = Buffer.alloc(max + 1);
  let got = 0;
  for (;;) {
    const n = readSync(fd, buf, got, buf.length - got, null);
    if (n === 0) break;
    got += n;
    if (got > max) tooBig();
  }
  return buf.subarray(0, got);
}

/** Deeper than this, removeTree hands the rest to rmSync (a runtime dir is two levels deep). */
const TREE_DEPTH = 32;

/**
 * `rm -rf path`: a symlink is removed, never followed, and nothing there is no error.
 * - Not rmSync: every call goes through Node's rimraf code, which a fresh process runs cold,
 *   ~3 ms for a tree (~1 for a file) of every destroy (issue 17). Below TREE_DEPTH levels it
 *   is used.
 * - Not rmSync's `force` on a missing path: it throws ENOENT and catches it inside, and a fresh
 *   Node's first thrown error costs ~1 ms.
 * A directory's entries are typed by readdir (d_type, or an lstat where the filesystem gives
 * none): a link to a directory is an entry that is unlinked.
 */
export function removeTree(path: string, depth = 0): void {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (st === undefined) return;
  if (!st.isDirectory()) return gone(() => unlinkSync(path));
  if (depth >= TREE_DEPTH) return rmSync(path, { recursive: true, force: true });
  for (const e of readdirSync(path, { withFileTypes: true })) {
    const child = join(path, e.name);
    if (e.isDirectory()) removeTree(child, depth + 1);
    else gone(() => unlinkSync(child));
  }
  gone(() => rmdirSync(path));
}

/**
 * `rm -f path` for a path that is not a directory (a socket, a journal, a profile): a directory
 * there is an error (EISDIR), as with rmSync without `recursive` (whose rimraf code costs a
 * fresh process ~1 ms). Nothing there is no error, and throws nothing inside.
 */
export function removeFile(path: string): void {
  if (lstatSync(path, { throwIfNoEntry: false }) !== undefined) gone(() => unlinkSync(path));
}

/** Runs a removal; what is already gone (a race with another remover) is no error. */
function gone(remove: () => void): void {
  try {
    remove();
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
}
