/**
 * The files of a `dir` pool, acted on through fds (STYLE.md "Files are fds, not paths"): the
 * pool's directory is opened once with no symlink on the way, and every volume is looked up,
 * created (O_CREAT|O_EXCL|O_NOFOLLOW) or removed inside that opened directory. A volume is a
 * regular file; links, FIFOs, devices and directories in a pool are not volumes and are never
 * opened for I/O.
 */
import {
  chownSync,
  closeSync,
  constants,
  fstatSync,
  ftruncateSync,
  lstatSync,
  openSync,
  readdirSync,
  readSync,
  statfsSync,
  unlinkSync,
} from 'node:fs';
import { SvirtError, errnoOf } from '../errors.js';
import { openHandle, type FileHandle } from '../host/file-handle.js';
import { objectNameProblem, type VolumeFormat } from './storage-xml.js';

/** Volumes listed per pool at most (libvirt's REMOTE_STORAGE_VOL_LIST_MAX). */
export const MAX_VOLUMES = 16384;

export interface VolumeStat {
  readonly name: string;
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly blocks: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

/** An opened pool directory: `at(name)` names a file inside exactly this directory. */
export class PoolDir {
  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
  ) {}

  static open(path: string): PoolDir {
    const h = openHandle(path, 'open the storage pool directory');
    if (h.kind !== 'dir') {
      h.close();
      throw new SvirtError('SVIRT_ERR_PATH_INVALID', `storage pool directory "${path}" is not a directory`);
    }
    return new PoolDir(path, h);
  }

  close(): void {
    this.handle.close();
  }

  /** The directory's owner (pool-build's permissions), through its fd. */
  chown(uid: number, gid: number): void {
    chownSync(this.handle.procPath, uid, gid);
  }

  /** The path of `name` through the directory's fd: no lookup outside it. */
  at(name: string): string {
    const problem = objectNameProblem(name);
    if (problem !== undefined) throw new SvirtError('SVIRT_ERR_PATH_INVALID', `volume name ${JSON.stringify(name)}: ${problem}`);
    return `${this.handle.procPath}/${name}`;
  }

  /** The volume's path as guests and clients name it. */
  pathOf(name: string): string {
    return `${this.path}/${name}`;
  }

  /** Regular files of the directory (not followed: a link is not a volume). */
  list(): VolumeStat[] {
    const out: VolumeStat[] = [];
    for (const name of readdirSync(this.handle.procPath)) {
      if (out.length >= MAX_VOLUMES) break;
      if (objectNameProblem(name) !== undefined) continue;
      const st = this.stat(name);
      if (st) out.push(st);
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The volume's file, or undefined when there is no regular file of that name. */
  stat(name: string): VolumeStat | undefined {
    let st;
    try {
      st = lstatSync(this.at(name));
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return undefined;
      throw err;
    }
    if (!st.isFile()) return undefined;
    return { name, dev: st.dev, ino: st.ino, size: st.size, blocks: st.blocks, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  }

  /** A new, empty file (0600, the caller's owner), never an existing one or a link's target. */
  create(name: string): number {
    try {
      return openSync(this.at(name), constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'EEXIST') {
        throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `storage volume '${name}' exists already in "${this.path}"`);
      }
      throw new SvirtError('SVIRT_ERR_HOST', `cannot create "${this.pathOf(name)}": ${errno ?? String(err)}`, { cause: err });
    }
  }

  /**
   * Opens a volume for I/O (read-only or read-write): a regular file, no link, and the very
   * file `expect` describes when given (it was checked, e.g. not in use, by dev + inode).
   */
  open(name: string, write: boolean, expect?: { dev: number; ino: number }): number {
    let fd: number;
    try {
      fd = openSync(
        this.at(name),
        (write ? constants.O_RDWR : constants.O_RDONLY) | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY,
      );
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'ENOENT') throw noVolume(name);
      throw new SvirtError('SVIRT_ERR_HOST', `cannot open "${this.pathOf(name)}": ${errno ?? String(err)}`, { cause: err });
    }
    const st = fstatSync(fd);
    if (!st.isFile() || (expect && (st.dev !== expect.dev || st.ino !== expect.ino))) {
      closeSync(fd);
      throw new SvirtError('SVIRT_ERR_FILE_CHANGED', `"${this.pathOf(name)}" is not the volume's file (it changed meanwhile)`);
    }
    return fd;
  }

  /** Removes the volume's name, if it still names the file that was checked. */
  remove(name: string, expect: { dev: number; ino: number }): void {
    const st = this.stat(name);
    if (!st || st.dev !== expect.dev || st.ino !== expect.ino) {
      throw new SvirtError('SVIRT_ERR_FILE_CHANGED', `"${this.pathOf(name)}" is not the volume's file (it changed meanwhile)`);
    }
    unlinkSync(this.at(name));
  }

  /** A half-made volume goes (after a failed create or clone): only the file this call made. */
  discard(name: string, fd: number): void {
    try {
      const st = fstatSync(fd);
      this.remove(name, { dev: st.dev, ino: st.ino });
    } catch {
      // Gone or replaced meanwhile: nothing of ours is left under that name.
    }
  }

  /** Size, use and room of the filesystem the pool is on (pool-info). */
  sizes(): { capacity: number; allocation: number; available: number } {
    const s = statfsSync(this.handle.procPath);
    const capacity = s.blocks * s.bsize;
    const available = s.bavail * s.bsize;
    return { capacity, allocation: capacity - s.bfree * s.bsize, available };
  }
}

export function noVolume(name: string): SvirtError {
  return new SvirtError('SVIRT_ERR_NO_STORAGE_VOL', `Storage volume not found: no storage vol with matching name '${name}'`);
}

/**
 * The guest-visible size of a volume, from its declared format alone: a raw file's length, a
 * qcow2 image's header (its `size` field, bytes 24..31); never a guess from the content.
 */
export function capacityOf(fd: number, format: VolumeFormat): number {
  const st = fstatSync(fd);
  if (format === 'raw') return st.size;
  const head = Buffer.alloc(32);
  const n = readSync(fd, head, 0, 32, 0);
  if (n < 32 || head.readUInt32BE(0) !== 0x514649fb) return 0; // not (yet) a qcow2 image: nothing a guest would see
  const size = head.readBigUInt64BE(24);
  return size > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(size);
}

/** A raw volume's new size (sparse: ftruncate). */
export function truncateRaw(fd: number, size: number): void {
  ftruncateSync(fd, size);
}
