import { closeSync, constants, lstatSync, openSync, unlinkSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { SvirtError, errnoOf } from '../errors.js';
import { describeKind, openHandle, type FileHandle, type FileKind } from '../host/file-handle.js';
import { listenUnixAt } from '../host/native.js';
import { pseudoFilesystem } from '../host/pseudo-fs.js';
import { withSocketLabel } from '../host/selinux-socket.js';
import type { GuestResource, ResourceRole } from '../security/driver.js';

/** The file kinds each role may be: anything else is refused before it is labelled. */
const ACCEPTS: Readonly<Record<ResourceRole, readonly FileKind[]>> = {
  disk: ['file', 'block'],
  'disk-readonly': ['file', 'block'],
  'disk-shareable': ['file', 'block'],
  backing: ['file', 'block'],
  kernel: ['file'],
  initrd: ['file'],
  dtb: ['file'],
  loader: ['file'],
  nvram: ['file'],
  chardev: ['file', 'socket'],
  log: ['file'],
  'runtime-dir': ['dir'],
  'saved-state': ['file'],
};

/** Every fd a step opened; closed once, whatever happens. */
export class OpenFiles {
  private readonly handles: FileHandle[] = [];
  private readonly fds: number[] = [];

  handle(h: FileHandle): FileHandle {
    this.handles.push(h);
    return h;
  }

  fd(fd: number): number {
    this.fds.push(fd);
    return fd;
  }

  /** Closes the I/O fds (QEMU has its copies once it is spawned). */
  closeFds(): void {
    for (const fd of this.fds.splice(0)) closeSync(fd);
  }

  /** Closes everything (each fd is owned here alone, so it is still ours). */
  closeAll(): void {
    this.closeFds();
    for (const h of this.handles.splice(0)) h.close();
  }
}

/** What QEMU gets for a chardev: the fd svirt made for it. */
export interface ChardevIo {
  readonly fd: number;
  /** A file is written through an fdset; a listening socket is passed as a plain fd. */
  readonly kind: 'file' | 'listen';
}

/**
 * Opens every resolved resource once, with no symlink on the way, and checks its kind for its
 * role. A chardev file that does not exist is created (O_EXCL, 0600) inside its opened
 * directory; a chardev socket in bind mode is bound by svirt (QEMU gets the listening fd).
 * The returned resources carry their handles; `io` maps a chardev resource to QEMU's fd.
 */
export function openResources(
  list: readonly GuestResource[],
  files: OpenFiles,
  socketLabel: string | undefined,
): { resources: GuestResource[]; io: Map<GuestResource, ChardevIo> } {
  const io = new Map<GuestResource, ChardevIo>();
  const resources = list.map((r) => {
    if (r.handle) return r;
    let made: ChardevIo | undefined;
    if (r.role === 'chardev' && r.chardev?.type === 'unix' && r.chardev.mode !== 'connect') {
      made = { fd: files.fd(bindSocket(r.path, socketLabel)), kind: 'listen' };
    } else if (r.role === 'chardev' && r.chardev?.type === 'file') {
      ensureFile(r.path);
    }
    const h = files.handle(openHandle(r.path, `use "${r.declared ?? r.path}" as ${r.role}:`));
    const kinds = ACCEPTS[r.role];
    if (!kinds.includes(h.kind) || (r.chardev?.type === 'unix' && h.kind !== 'socket')) {
      throw new SvirtError(
        'SVIRT_ERR_PATH_INVALID',
        `cannot use "${r.declared ?? r.path}" as ${r.role}: it is ${describeKind(h.kind)}`,
        { details: { path: r.path, kind: h.kind, role: r.role } },
      );
    }
    // A kernel interface is no guest's file: labelling /proc or /sys entries fails or, worse, acts.
    const pseudo = pseudoFilesystem(h.procPath);
    if (pseudo !== undefined) {
      throw new SvirtError(
        'SVIRT_ERR_PATH_INVALID',
        `cannot use "${r.declared ?? r.path}" as ${r.role}: it is on a ${pseudo} filesystem`,
        {
          details: { path: r.path, filesystem: pseudo, role: r.role },
        },
      );
    }
    const out: GuestResource = { ...r, handle: h };
    if (r.chardev?.type === 'file') {
      made = { fd: files.fd(h.reopen(constants.O_WRONLY | constants.O_APPEND)), kind: 'file' };
    }
    if (made) io.set(out, made);
    return out;
  });
  return { resources, io };
}

/** Creates a missing chardev log (root's, 0600) without following a link at its name. */
function ensureFile(path: string): void {
  const dir = openHandle(dirname(path), `create "${path}" in`);
  try {
    if (dir.kind !== 'dir')
      throw new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot create "${path}": its parent is not a directory`);
    const flags = constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_WRONLY | constants.O_NONBLOCK;
    closeSync(openSync(`${dir.procPath}/${basename(path)}`, flags, 0o600));
  } catch (err) {
    if (errnoOf(err) === 'EEXIST') return; // it is there: openHandle checks what it is
    if (err instanceof SvirtError) throw err;
    throw new SvirtError('SVIRT_ERR_LABEL_APPLY', `cannot create "${path}": ${errnoOf(err) ?? String(err)}`, {
      details: { path, errno: errnoOf(err) },
      cause: err,
    });
  } finally {
    dir.close();
  }
}

/**
 * Binds a listening socket at `path` inside its opened directory (a stale socket of an
 * earlier run is replaced; any other file there is refused), labelled for the guest.
 */
export function bindSocket(path: string, socketLabel: string | undefined): number {
  const dir = openHandle(dirname(path), `bind "${path}" in`);
  try {
    if (dir.kind !== 'dir')
      throw new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot bind "${path}": its parent is not a directory`);
    const at = `${dir.procPath}/${basename(path)}`;
    let st;
    try {
      st = lstatSync(at);
    } catch {
      st = undefined; // nothing there: the usual case
    }
    if (st && !st.isSocket()) {
      throw new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot bind "${path}": a file that is not a socket is in the way`, {
        details: { path },
      });
    }
    if (st) unlinkSync(at);
    return withSocketLabel(socketLabel, () => listenUnixAt(dir.fd, basename(path)));
  } catch (err) {
    if (err instanceof SvirtError) throw err;
    throw new SvirtError('SVIRT_ERR_HOST', `cannot bind "${path}": ${errnoOf(err) ?? String(err)}`, {
      details: { path, errno: errnoOf(err) },
      cause: err,
    });
  } finally {
    dir.close();
  }
}

/** A resource without its handle: later steps reach the file again by path + identity. */
export function dropHandle(r: GuestResource): GuestResource {
  if (!r.handle) return r;
  const { handle, ...rest } = r;
  return { ...rest, ident: handle.identity };
}
