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

/** Deeper than this, removeTree hands the rest to rmSync, from a directory it holds open (svirt's own trees are two levels deep). */
const TREE_DEPTH = 32;

/**
 * `rm -rf path`: a symlink is removed, never followed, and nothing there is no error.
 * - Not rmSync: every call goes through Node's rimraf code, which a fresh process runs cold,
 *   ~3 ms for a tree (~1 for a file) of every destroy (issue 17).
 * - Each directory is opened (O_NOFOLLOW) and walked through its fd
 *   (`/proc/self/fd/N/name`): a directory swapped for a link while the walk runs is not
 *   followed, where a walk by path names (rimraf's included) would follow it.
 */
export function removeTree(path: string): void {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (st === undefined) return;
  if (st.isDirectory()) removeDirAt(path, 0);
  else gone(() => unlinkSync(path));
}

/** Empties and removes the directory at `path` (a path, or /proc/self/fd/N/name); a link there is unlinked. */
function removeDirAt(path: string, depth: number): void {
  // Never for svirt's own trees; a guest could build one to make a walk hold thousands of fds.
  if (depth >= TREE_DEPTH) return rmSync(path, { recursive: true, force: true });
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === 'ENOENT') return;
    if (errno === 'ELOOP' || errno === 'ENOTDIR') return gone(() => unlinkSync(path)); // no longer a directory
    throw err;
  }
  try {
    const at = `/proc/self/fd/${fd}`;
    for (const e of readdirSync(at, { withFileTypes: true })) {
      const child = `${at}/${e.name}`;
      if (e.isDirectory()) removeDirAt(child, depth + 1);
      else gone(() => unlinkSync(child));
    }
  } finally {
    closeSync(fd);
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
