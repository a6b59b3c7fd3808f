/**
 * The notify socket's file (exit-notify-listener.ts): the root-only dir it lives in checked,
 * a stale socket told from a live one (another serve of this state dir), the bind made inside
 * the opened dir at mode 0600.
 */
import { lstatSync, unlinkSync, type Stats } from 'node:fs';
import { basename, dirname } from 'node:path';
import { connect } from 'node:net';
import { SvirtError, errnoOf } from '../errors.js';
import { openHandle, type FileHandle } from '../host/file-handle.js';
import { listenUnixAt, peerCred } from '../host/native.js';
import { socketFd } from './connection.js';

/** The monitor dir must be svirt's user's alone: nobody else may swap the socket or reach it. */
export function checkDir(dir: FileHandle, path: string): void {
  const st = dir.current();
  const uid = process.geteuid?.() ?? 0;
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new SvirtError(
      'SVIRT_ERR_HOST',
      `cannot listen for the monitors on "${path}": "${dir.path}" must be a directory of uid ${uid} only it can use ` +
        `(it is uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')})`,
      { details: { path: dir.path } },
    );
  }
}

/** Removes a stale socket (nobody accepts on it); a live one is another serve of this state dir. */
export async function claim(dir: FileHandle, name: string, path: string): Promise<void> {
  const at = `${dir.procPath}/${name}`;
  let st: Stats;
  try {
    st = lstatSync(at);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return;
    throw new SvirtError('SVIRT_ERR_HOST', `cannot listen for the monitors on "${path}": ${errnoOf(err) ?? String(err)}`, {
      details: { path },
      cause: err,
    });
  }
  if (!st.isSocket()) {
    throw new SvirtError('SVIRT_ERR_HOST', `cannot listen for the monitors on "${path}": it exists and is not a socket`, {
      details: { path },
    });
  }
  const peer = await probe(at);
  if (peer !== 'stale') throw anotherServe(path, peer);
  try {
    unlinkSync(at);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err; // gone since the lstat: nothing to replace
  }
}

function anotherServe(path: string, pid: number | undefined): SvirtError {
  return new SvirtError(
    'SVIRT_ERR_OPERATION_INVALID',
    `another svirt serve${pid ? ` (pid ${pid})` : ''} serves this state dir: its monitors' socket "${path}" is live (one serve per state dir)`,
    { details: { path, ...(pid ? { pid } : {}) } },
  );
}

/** 'stale' when nothing accepts on the socket, else the pid of whoever listens (undefined: one that is not accepting). */
function probe(at: string): Promise<'stale' | number | undefined> {
  return new Promise((resolve, reject) => {
    const s = connect(at);
    s.once('connect', () => {
      const fd = socketFd(s);
      let pid: number | undefined;
      try {
        pid = fd === undefined ? undefined : peerCred(fd).pid;
      } catch {
        pid = undefined; // it listens; who it is only adds to the message
      }
      s.destroy();
      resolve(pid);
    });
    s.once('error', (err) => {
      const errno = errnoOf(err);
      if (errno === 'ECONNREFUSED' || errno === 'ENOENT') resolve('stale');
      else if (errno === 'EAGAIN')
        resolve(undefined); // a full backlog: someone listens but does not accept now
      else reject(new SvirtError('SVIRT_ERR_HOST', `cannot probe "${at}": ${errno ?? err.message}`, { cause: err }));
    });
  });
}

/** Binds the socket inside the opened dir at mode 0600 (the umask set around the synchronous bind). */
export function bindAt(dir: FileHandle, name: string, path: string): number {
  const old = process.umask(0o177);
  try {
    return listenUnixAt(dir.fd, name, 64);
  } catch (err) {
    if (errnoOf(err) === 'EADDRINUSE') throw anotherServe(path, undefined); // another serve bound it since the claim
    throw new SvirtError('SVIRT_ERR_HOST', `cannot listen for the monitors on "${path}": ${errnoOf(err) ?? String(err)}`, {
      details: { path },
      cause: err,
    });
  } finally {
    process.umask(old);
  }
}

/** A listening socket bound in the monitor dir by {@link bindOwn}. */
export interface OwnSocket {
  readonly fd: number;
  /** Removes the socket if it is still the one bound (not a later serve's), and lets go of the dir. */
  remove(): void;
  /** Lets go of the dir, leaving the socket (a later claim finds it stale). */
  release(): void;
}

/**
 * Opens the socket's dir (`what`: for the error, "listen for the monitors in"), checks it,
 * claims the name and binds it ({@link checkDir}, {@link claim}, {@link bindAt}); the socket's
 * device and inode are kept, so that `remove` never unlinks another's.
 */
export async function bindOwn(path: string, what: string): Promise<OwnSocket> {
  const name = basename(path);
  const dir = openHandle(dirname(path), what);
  let fd: number;
  let bound: Stats;
  try {
    checkDir(dir, path);
    await claim(dir, name, path);
    fd = bindAt(dir, name, path);
    bound = lstatSync(`${dir.procPath}/${name}`);
  } catch (err) {
    dir.close();
    throw err;
  }
  return {
    fd,
    remove: () => {
      try {
        const at = `${dir.procPath}/${name}`;
        const st = lstatSync(at);
        if (st.isSocket() && st.dev === bound.dev && st.ino === bound.ino) unlinkSync(at);
      } catch {
        // Already gone: nothing of this one is left there.
      } finally {
        dir.close();
      }
    },
    release: () => dir.close(),
  };
}
