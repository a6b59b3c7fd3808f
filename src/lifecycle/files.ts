import { closeSync, constants, lstatSync, openSync, unlinkSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Entrypoints } from '../access/entrypoints.js';
import { SvirtError, errnoOf } from '../errors.js';
import { describeKind, openHandle, type FileHandle, type FileKind } from '../host/file-handle.js';
import { listenUnixAt } from '../host/native.js';
import { pseudoFilesystem } from '../host/pseudo-fs.js';
import { withSocketLabel } from '../host/selinux-socket.js';
import type { ChardevType, DomainDef } from '../domain/domain-def.js';
import type { PipeFds } from '../qemu/chardev-pipe.js';
import type { FdLayout } from '../qemu/fd-layout.js';
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
  chardev: ['file', 'socket', 'fifo'],
  log: ['file'],
  'runtime-dir': ['dir'],
  'saved-state': ['file'],
  'helper-log': ['file'],
  'tpm-state': ['dir', 'file'],
  'shared-dir': ['dir'],
  'shared-dir-readonly': ['dir'],
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

/** What each chardev type may be on disk (a file chardev that is a FIFO would block QEMU). */
const CHARDEV_KINDS: Readonly<Record<ChardevType, readonly FileKind[]>> = {
  file: ['file'],
  unix: ['socket'],
  pipe: ['fifo'],
  pty: [],
  spicevmc: [],
};

/** What QEMU gets for a chardev: the fd svirt made for it. */
export interface ChardevIo {
  readonly fd: number;
  /**
   * A file is written through an fdset; a listening socket is passed as a plain fd; a pipe's
   * FIFO (both ways, or its .in or .out) goes in an fdset (src/qemu/chardev-pipe.ts).
   */
  readonly kind: 'file' | 'listen' | 'pipe' | 'pipe-in' | 'pipe-out';
  /** pipe-in/-out: an O_RDWR fd of the same FIFO that QEMU keeps beside the one it uses. */
  readonly peer?: number;
}

/**
 * Opens every resolved resource once, with no symlink on the way, and checks its kind for its
 * role and the entrypoint rules (src/access/entrypoints.ts). A chardev file that does not exist is created (O_EXCL, 0600) inside its opened
 * directory; a chardev socket in bind mode is bound by svirt (QEMU gets the listening fd).
 * The returned resources carry their handles; `io` maps a chardev resource to QEMU's fd.
 */
export function openResources(
  list: readonly GuestResource[],
  files: OpenFiles,
  socketLabel: string | undefined,
  entry: Entrypoints,
): { resources: GuestResource[]; io: Map<GuestResource, ChardevIo> } {
  const io = new Map<GuestResource, ChardevIo>();
  // Every path rule first: a refusal must come before svirt creates a log or binds a socket.
  for (const r of list) if (!r.handle) entry.checkPath(r);
  const resources = list.map((r) => {
    if (r.handle) return r;
    let made: ChardevIo | undefined;
    if (r.role === 'chardev' && r.chardev?.type === 'unix' && r.chardev.mode !== 'connect') {
      made = { fd: files.fd(bindSocket(r.path, socketLabel)), kind: 'listen' };
    } else if (r.role === 'chardev' && r.chardev?.type === 'file') {
      ensureFile(r.path);
    }
    const h = files.handle(openHandle(r.path, `use "${r.declared ?? r.path}" as ${r.role}:`));
    const kinds = r.role === 'chardev' && r.chardev ? CHARDEV_KINDS[r.chardev.type] : ACCEPTS[r.role];
    if (!kinds.includes(h.kind)) {
      const pipe = r.chardev?.type === 'pipe' ? r.chardev : undefined;
      const what = pipe ? `for <${pipe.element} type='pipe'>` : `as ${r.role}`;
      throw new SvirtError(
        'SVIRT_ERR_PATH_INVALID',
        `cannot use "${r.declared ?? r.path}" ${what}: it is ${describeKind(h.kind)}${pipe ? ', not a FIFO' : ''}`,
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
    entry.checkOpened(r, h); // what the file really is, before any label
    const out: GuestResource = { ...r, handle: h };
    if (r.chardev?.type === 'file') {
      // libvirt's append='off' (the default): the file starts empty at each start
      const trunc = r.chardev.append === true ? 0 : constants.O_TRUNC;
      made = { fd: files.fd(h.reopen(constants.O_WRONLY | constants.O_APPEND | trunc)), kind: 'file' };
    } else if (r.chardev?.type === 'pipe') {
      made = openPipe(h, files, pipeEnd(r));
    }
    if (made) io.set(out, made);
    return out;
  });
  return { resources, io };
}

/** Which way QEMU uses a pipe chardev's FIFO: PATH.in, PATH.out, or PATH both ways. */
function pipeEnd(r: GuestResource): 'in' | 'out' | 'both' {
  const declared = r.declared ?? r.path;
  if (declared === `${r.chardev?.path ?? ''}.in`) return 'in';
  if (declared === `${r.chardev?.path ?? ''}.out`) return 'out';
  return 'both';
}

/**
 * The fds of a pipe chardev's FIFO, opened O_NONBLOCK through its checked handle. O_RDWR
 * first: it never waits, and holding it lets the O_WRONLY open of PATH.out find a reader.
 */
function openPipe(h: FileHandle, files: OpenFiles, end: 'in' | 'out' | 'both'): ChardevIo {
  const rw = files.fd(h.openFifo(constants.O_RDWR));
  if (end === 'both') return { fd: rw, kind: 'pipe' };
  // QEMU's file backend, the one that takes an input and an output, opens them O_RDONLY and O_WRONLY.
  const one = files.fd(h.openFifo(end === 'in' ? constants.O_RDONLY : constants.O_WRONLY));
  return { fd: one, kind: end === 'in' ? 'pipe-in' : 'pipe-out', peer: rw };
}

/** QEMU's fdsets for each pipe chardev, by index in def.chardevs, from set `usedSets + 1` on. */
export function pipeEntries(
  def: DomainDef,
  io: ReadonlyMap<GuestResource, ChardevIo>,
  layout: FdLayout,
  usedSets: number,
): Map<number, PipeFds> {
  const out = new Map<number, PipeFds>();
  let set = usedSets;
  for (const [r, x] of io) {
    if (x.kind !== 'pipe' && x.kind !== 'pipe-in' && x.kind !== 'pipe-out') continue;
    const index = def.chardevs.findIndex((c) => c === r.chardev);
    if (index < 0) throw new SvirtError('SVIRT_ERR_INTERNAL', `the FIFO "${r.path}" belongs to no chardev`);
    const s = ++set;
    const fds = [x.fd, ...(x.peer === undefined ? [] : [x.peer])].map((fd) => ({ fd: layout.add(fd), set: s, path: r.path }));
    const prev = out.get(index);
    const which = x.kind === 'pipe' ? { both: s } : x.kind === 'pipe-in' ? { input: s } : { output: s };
    out.set(index, { ...prev, ...which, fds: [...(prev?.fds ?? []), ...fds] });
  }
  return out;
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
    // nothing there is the usual case: no ENOENT thrown for it (issue 17)
    const st = lstatSync(at, { throwIfNoEntry: false });
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
