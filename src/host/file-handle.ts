/**
 * Files are fds, not paths (STYLE.md): a resource is opened once, as an O_PATH fd of exactly
 * the file its path names with no symlink in any component, and every later step (type
 * check, label, owner, the fd QEMU gets) acts on that fd. Restores reopen the remembered path
 * the same way and act only when the file is still the one labelled (device + inode).
 */
import { chmodSync, chownSync, closeSync, constants, fstatSync, lstatSync, openSync, unlinkSync, type Stats } from 'node:fs';
import { basename, dirname } from 'node:path';
import { SvirtError, errnoOf } from '../errors.js';
import { openPath } from './native.js';

/** The identity a label is remembered by, beside the path. */
export interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
}

export type FileKind = 'file' | 'dir' | 'block' | 'char' | 'fifo' | 'socket' | 'other';

export function kindOf(st: Stats): FileKind {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isBlockDevice()) return 'block';
  if (st.isCharacterDevice()) return 'char';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  return 'other';
}

const KIND_NAMES: Readonly<Record<FileKind, string>> = {
  file: 'a regular file',
  dir: 'a directory',
  block: 'a block device',
  char: 'a character device',
  fifo: 'a FIFO',
  socket: 'a socket',
  other: 'a special file',
};

export function describeKind(kind: FileKind): string {
  return KIND_NAMES[kind];
}

/** An O_PATH fd of one file, with what fstat said of it when it was opened. */
export class FileHandle {
  readonly fd: number;
  readonly path: string;
  readonly stats: Stats;
  private closed = false;

  constructor(fd: number, path: string) {
    this.fd = fd;
    this.path = path;
    this.stats = fstatSync(fd);
  }

  get kind(): FileKind {
    return kindOf(this.stats);
  }

  get identity(): FileIdentity {
    return { dev: this.stats.dev, ino: this.stats.ino };
  }

  /** The magic link that names exactly this file (never a path lookup again). */
  get procPath(): string {
    return `/proc/self/fd/${this.fd}`;
  }

  /** The current owner and mode (a label may have changed them since open). */
  current(): Stats {
    return fstatSync(this.fd);
  }

  /**
   * An ordinary fd of this same file for I/O (flags e.g. O_RDWR). Only regular files, block
   * devices and directories: opening a FIFO or a character device can block or act.
   */
  reopen(flags: number): number {
    const kind = this.kind;
    if (kind !== 'file' && kind !== 'block' && kind !== 'dir') {
      throw new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot open "${this.path}": it is ${describeKind(kind)}`, {
        details: { path: this.path, kind },
      });
    }
    try {
      return openSync(this.procPath, flags | constants.O_NOCTTY);
    } catch (err) {
      throw new SvirtError('SVIRT_ERR_HOST', `cannot open "${this.path}": ${errnoOf(err) ?? String(err)}`, {
        details: { path: this.path, errno: errnoOf(err) },
        cause: err,
      });
    }
  }

  /**
   * An I/O fd of this FIFO, opened O_NONBLOCK through the handle: never waits for the other
   * end (O_WRONLY without a reader fails ENXIO instead; O_RDWR always succeeds).
   */
  openFifo(flags: number): number {
    if (this.kind !== 'fifo') {
      throw new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot open "${this.path}" as a FIFO: it is ${describeKind(this.kind)}`, {
        details: { path: this.path, kind: this.kind },
      });
    }
    try {
      return openSync(this.procPath, flags | constants.O_NONBLOCK | constants.O_NOCTTY);
    } catch (err) {
      throw new SvirtError('SVIRT_ERR_HOST', `cannot open the FIFO "${this.path}": ${errnoOf(err) ?? String(err)}`, {
        details: { path: this.path, errno: errnoOf(err) },
        cause: err,
      });
    }
  }

  /** chown + chmod of this file (through its fd's magic link, so a swapped path is never touched). */
  setOwner(uid: number, gid: number, mode: number): void {
    try {
      chownSync(this.procPath, uid, gid);
      chmodSync(this.procPath, mode);
    } catch (err) {
      throw new SvirtError(
        'SVIRT_ERR_LABEL_APPLY',
        `cannot chown "${this.path}" to +${uid}:+${gid}: ${errnoOf(err) ?? String(err)}`,
        { details: { path: this.path, errno: errnoOf(err) }, cause: err },
      );
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}

/**
 * Opens `path` (absolute) as a handle, refusing a symlink anywhere on the way. Errors name the
 * path: ELOOP becomes "a symbolic link is on the way", ENOENT keeps its errno in details.
 */
export function openHandle(path: string, what = 'open'): FileHandle {
  let fd: number;
  try {
    fd = openPath(path);
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === 'ELOOP') {
      throw new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot ${what} "${path}": a symbolic link is on the way`, {
        details: { path, errno },
        cause: err,
      });
    }
    throw new SvirtError('SVIRT_ERR_HOST', `cannot ${what} "${path}": ${errno ?? String(err)}`, {
      details: { path, errno },
      cause: err,
    });
  }
  let h: FileHandle;
  try {
    h = new FileHandle(fd, path);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  // openat2 hands back the link itself when the last component is one (O_PATH|O_NOFOLLOW).
  if (h.stats.isSymbolicLink()) {
    h.close();
    throw new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot ${what} "${path}": it is a symbolic link`, {
      details: { path, errno: 'ELOOP' },
    });
  }
  return h;
}

/** Thrown when a remembered path now names another file (or passes through a symlink). */
export class FileChangedError extends SvirtError {
  constructor(path: string, why: string) {
    super('SVIRT_ERR_FILE_CHANGED', `"${path}" is no longer the file svirt labelled (${why}): left alone`, {
      details: { path },
    });
  }
}

/**
 * Reopens a remembered file for a restore: the same path, no symlink on the way, and the same
 * device + inode as when it was labelled. Returns undefined when the file is gone; throws
 * FileChangedError when the path now leads elsewhere.
 */
export function reopenIdentity(path: string, ident: FileIdentity | undefined, what: string): FileHandle | undefined {
  let h: FileHandle;
  try {
    h = openHandle(path, what);
  } catch (err) {
    if (err instanceof SvirtError && err.details['errno'] === 'ENOENT') return undefined;
    // A link where a labelled file was is a swap; for a file never labelled it is a plain error.
    if (ident !== undefined && err instanceof SvirtError && err.details['errno'] === 'ELOOP') {
      throw new FileChangedError(path, 'a symbolic link is on the way');
    }
    throw err;
  }
  if (ident !== undefined && (h.stats.dev !== ident.dev || h.stats.ino !== ident.ino)) {
    h.close();
    throw new FileChangedError(path, `device/inode ${ident.dev}/${ident.ino} became ${h.stats.dev}/${h.stats.ino}`);
  }
  return h;
}

/** Runs fn with a handle of `ref`: its own when the caller opened it, else one reopened by identity. */
export function withHandle<T>(ref: FileRef, what: string, fn: (h: FileHandle) => T): T | undefined {
  if (ref.handle) return fn(ref.handle);
  const h = reopenIdentity(ref.path, ref.ident, what);
  if (h === undefined) return undefined;
  try {
    return fn(h);
  } finally {
    h.close();
  }
}

/** withHandle for an async fn: a handle reopened here stays open until fn's promise settles. */
export async function withHandleAsync<T>(ref: FileRef, what: string, fn: (h: FileHandle) => Promise<T>): Promise<T | undefined> {
  if (ref.handle) return fn(ref.handle);
  const h = reopenIdentity(ref.path, ref.ident, what);
  if (h === undefined) return undefined;
  try {
    return await fn(h);
  } finally {
    h.close();
  }
}

/**
 * Unlinks `path` through its opened directory (no link on the way), when `only` accepts what
 * lstat says is there. A directory that is gone or became a link, or a name already gone,
 * leaves nothing of svirt's to remove: not an error.
 */
export function unlinkBeneath(path: string, what: string, only: (st: Stats) => boolean = () => true): void {
  let dir: FileHandle;
  try {
    dir = openHandle(dirname(path), what);
  } catch {
    return;
  }
  try {
    const at = `${dir.procPath}/${basename(path)}`;
    if (only(lstatSync(at))) unlinkSync(at);
  } catch {
    // Already gone.
  } finally {
    dir.close();
  }
}

/** What drivers get for a file: its resolved path, and the handle or identity to reach it by. */
export interface FileRef {
  readonly path: string;
  readonly handle?: FileHandle;
  readonly ident?: FileIdentity;
}
