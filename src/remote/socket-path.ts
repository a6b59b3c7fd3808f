/**
 * The paths `svirt serve` listens on: the default socket, whether a server answers there, a
 * stale socket replaced, and a socket bound at its mode with no wider window.
 */
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect, type Server } from 'node:net';
import { dirname } from 'node:path';
import { SvirtError, errnoOf } from '../errors.js';

/** The default socket: /run/svirt/libvirt-sock for root, $XDG_RUNTIME_DIR/svirt/libvirt-sock otherwise. */
export function defaultSocketPath(env: NodeJS.ProcessEnv, uid: number): string {
  if (uid === 0) return '/run/svirt/libvirt-sock';
  const runtime = env['XDG_RUNTIME_DIR'];
  if (!runtime) throw new SvirtError('SVIRT_ERR_USAGE', 'XDG_RUNTIME_DIR is not set: give the socket with --socket PATH');
  return `${runtime}/svirt/libvirt-sock`;
}

/** Is something accepting connections on this socket path? */
export function listening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** A stale socket of a dead server is removed; a live one, or a file that is not a socket, is an error. */
export async function claimPath(path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket())
    throw new SvirtError('SVIRT_ERR_HOST', `cannot listen on "${path}": it exists and is not a socket`, { details: { path } });
  if (await listening(path)) {
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `cannot listen on "${path}": another server is listening there`, {
      details: { path },
    });
  }
  unlinkSync(path);
}

/** Listens with the socket created at `mode` (umask set around the synchronous bind, so no window with wider access). */
export function listenAt(server: Server, path: string, mode: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const old = process.umask(0o777 & ~mode);
    try {
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    } finally {
      process.umask(old);
    }
  }).then(() => chmodSync(path, mode));
}
