import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, rmSync, type Stats } from 'node:fs';
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

/**
 * `rm -rf path`, without the ENOENT that rmSync's `force` throws and catches inside when
 * nothing is there: the usual case on a start's path, and a fresh Node's first thrown error
 * costs ~1 ms (issue 17). A symlink there is removed, not followed (as rmSync does).
 */
export function removeTree(path: string): void {
  if (lstatSync(path, { throwIfNoEntry: false }) !== undefined) rmSync(path, { recursive: true, force: true });
}
