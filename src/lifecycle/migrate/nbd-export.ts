/**
 * The destination's NBD export for `--copy-storage-all` (docs/migration.md, "Copying the
 * storage"). QEMU gets no network right: svirt binds a UNIX socket in its root-only monitor
 * directory (at the guest's socket label), gives QEMU the listening fd (`getfd`,
 * `nbd-server-start` with an `fd` address) and exports each copied disk's format node
 * writable (`block-export-add`). svirt listens on TCP and relays to that socket exactly the
 * source's connections: each must open with the 32-byte token Prepare gave the source (read
 * before a byte goes to QEMU, within a deadline), at most one per copied disk; strangers are
 * cut, their number bounded, and the listener closes once every disk is connected, on
 * Finish, or at its deadline.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync } from 'node:fs';
import { createServer, Socket, type Server } from 'node:net';
import { basename, dirname, join } from 'node:path';
import type { DomainDef } from '../../domain/domain-def.js';
import { diskLayers } from '../../domain/disk-layers.js';
import { SvirtError } from '../../errors.js';
import { openHandle, unlinkBeneath } from '../../host/file-handle.js';
import { connectUnixAt } from '../../host/native.js';
import { withSocketLabel } from '../../host/selinux-socket.js';
import type { QmpClient } from '../../qemu/qmp-client.js';
import { bindSocket } from '../files.js';

/** A connection has this long to send its token. */
const TOKEN_MS = 5_000;
/** Connections cut for a wrong or missing token before the listener gives up. */
const MAX_STRANGERS = 32;
/** Connections waiting for their token at once (a newcomer evicts the oldest: the source sends its token at once). */
const MAX_PENDING = 8;
const TOKEN_BYTES = 32;

export function nbdSocketPath(runtimeRoot: string, uuid: string): string {
  return join(runtimeRoot, 'monitor', `${uuid}.nbd`);
}

/** The export's socket file goes once nothing connects to it any more (Finish, or the guest ends). */
export function removeExportSocket(runtimeRoot: string, uuid: string): void {
  unlinkBeneath(nbdSocketPath(runtimeRoot, uuid), 'remove the export socket', (st) => st.isSocket());
}

export function exportId(dev: string): string {
  return `svirt-nbd-${dev}`;
}

export interface NbdRelay {
  readonly port: number;
  /** Hex, as the cookie carries it. */
  readonly token: string;
  close(): void;
}

/** Starts QEMU's NBD server on a socket svirt bound, and exports every copied disk writable. */
export async function startExport(
  q: QmpClient,
  live: DomainDef,
  devs: readonly string[],
  socketPath: string,
  listenLabel: string | undefined,
): Promise<void> {
  const fd = bindSocket(socketPath, listenLabel);
  try {
    await q.executeWithFds('getfd', { fdname: 'svirt-nbd' }, [fd]);
  } finally {
    closeSync(fd);
  }
  await q.execute('nbd-server-start', { addr: { type: 'fd', data: { str: 'svirt-nbd' } } });
  for (const dev of devs) {
    const disk = live.disks.find((d) => d.target.dev === dev);
    const layer = disk ? diskLayers(disk)[0] : undefined;
    if (!layer) throw new SvirtError('SVIRT_ERR_INTERNAL', `no disk ${dev} to export`);
    await q.execute('block-export-add', {
      type: 'nbd',
      id: exportId(dev),
      'node-name': layer.fmtNode,
      name: dev,
      writable: true,
    });
  }
}

/** Ends the export (before `cont`): the exports go, hard (no client is left to wait for), then the server. Idempotent. */
export async function stopExport(q: QmpClient, devs: readonly string[]): Promise<void> {
  const exports = (await q.execute('query-block-exports')) as { id?: string }[];
  for (const dev of devs) {
    if (exports.some((e) => e.id === exportId(dev))) await q.execute('block-export-del', { id: exportId(dev), mode: 'hard' });
  }
  try {
    await q.execute('nbd-server-stop');
  } catch {
    // not running (a repeat after a crash): nothing to stop
  }
}

/**
 * Listens on `addr` (an ephemeral port) and relays up to `count` connections that open with
 * the token to the export's socket, connecting there at the guest's socket label.
 */
export async function relayExport(
  addr: string,
  count: number,
  socketPath: string,
  connectLabel: string | undefined,
  deadlineMs: number,
): Promise<NbdRelay> {
  const token = randomBytes(TOKEN_BYTES);
  const live = new Set<Socket>();
  let admitted = 0;
  let strangers = 0;
  const pending: (() => void)[] = [];
  const server: Server = createServer({ pauseOnConnect: true }, (s) => {
    if (admitted >= count) {
      s.destroy();
      return;
    }
    if (pending.length >= MAX_PENDING) pending[0]?.();
    live.add(s);
    let got = Buffer.alloc(0);
    let settled = false;
    const unqueue = (): void => {
      const i = pending.indexOf(reject);
      if (i >= 0) pending.splice(i, 1);
    };
    const reject = (): void => {
      if (settled) return;
      settled = true;
      unqueue();
      s.destroy();
      live.delete(s);
      if (++strangers >= MAX_STRANGERS) server.close();
    };
    pending.push(reject);
    const timer = setTimeout(reject, TOKEN_MS);
    s.on('error', reject);
    s.on('close', reject);
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      // The source's QEMU sends nothing before the server's greeting: a byte past the token is not the source.
      if (got.length > TOKEN_BYTES) return reject();
      if (got.length < TOKEN_BYTES) return;
      clearTimeout(timer);
      s.pause();
      s.off('data', onData);
      if (!timingSafeEqual(got, token) || admitted >= count) return reject();
      settled = true;
      unqueue();
      admitted++;
      if (admitted >= count) server.close();
      s.removeAllListeners('error');
      s.removeAllListeners('close');
      live.delete(s);
      try {
        pipeTo(s, socketPath, connectLabel, live);
      } catch {
        s.destroy(); // the export is gone (the guest ended): the source's mirror fails and it runs on
      }
    };
    s.on('data', onData);
    s.resume();
  });
  server.maxConnections = count + MAX_PENDING + 1;
  const timer = setTimeout(() => server.close(), deadlineMs);
  timer.unref();
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', (err) =>
      reject(new SvirtError('SVIRT_ERR_MIGRATE', `cannot listen on ${addr}: ${err.message}`, { cause: err })),
    );
    server.listen(0, addr, () => {
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : 0);
    });
  });
  return {
    port,
    token: token.toString('hex'),
    close() {
      clearTimeout(timer);
      server.close();
      for (const s of live) s.destroy();
      live.clear();
    },
  };
}

/** The admitted connection piped to and from the export's socket (each end's EOF passed on). */
function pipeTo(tcp: Socket, socketPath: string, label: string | undefined, live: Set<Socket>): void {
  const dir = openHandle(dirname(socketPath), 'reach the export in');
  let fd: number;
  try {
    fd = withSocketLabel(label, () => connectUnixAt(dir.fd, basename(socketPath)));
  } finally {
    dir.close();
  }
  const unix = new Socket({ fd, readable: true, writable: true });
  live.add(tcp).add(unix);
  const fail = (): void => {
    unix.destroy();
    tcp.destroy();
  };
  unix.on('error', fail);
  tcp.on('error', fail);
  unix.on('close', () => {
    tcp.end();
    live.delete(unix);
  });
  tcp.on('close', () => {
    unix.end();
    live.delete(tcp);
  });
  unix.pipe(tcp);
  tcp.pipe(unix);
  tcp.resume();
}
