/**
 * The migration stream's connection. svirt, not QEMU, makes it: the destination's svirt
 * listens and accepts one connection, the source's svirt connects, and each hands its end to
 * its QEMU as an fd (QMP getfd, then `migrate`/`migrate-incoming` with `fd:NAME`). Neither
 * QEMU needs a network right (Landlock keeps TCP denied), and neither reads a byte before
 * QEMU has the fd (the sockets are paused from the start).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { SvirtError } from '../../errors.js';
import { connectWithin } from '../../host/connect-within.js';

/** The OS fd of a connected socket (Node keeps it in its handle). */
export function socketFd(s: Socket): number {
  const handle = (s as unknown as { _handle?: { fd?: number } })._handle;
  if (handle?.fd === undefined || handle.fd < 0) throw new SvirtError('SVIRT_ERR_MIGRATE', 'the migration socket has no fd');
  return handle.fd;
}

export interface Listener {
  readonly port: number;
  /** The first connection; later ones are closed unanswered. */
  readonly accepted: Promise<Socket>;
  close(): void;
}

/** Listens on `addr`, an ephemeral port; gives up after `timeoutMs` without a connection. */
export async function listenOnce(addr: string, timeoutMs: number): Promise<Listener> {
  let server: Server | undefined;
  let timer: NodeJS.Timeout | undefined;
  const accepted = new Promise<Socket>((resolve, reject) => {
    server = createServer({ pauseOnConnect: true }, (s) => {
      server?.close();
      clearTimeout(timer);
      resolve(s);
    });
    server.maxConnections = 1;
    timer = setTimeout(() => {
      server?.close();
      reject(new SvirtError('SVIRT_ERR_MIGRATE', `no migration stream arrived on ${addr} within ${timeoutMs} ms`));
    }, timeoutMs);
    timer.unref();
  });
  accepted.catch(() => undefined); // the caller awaits it later; a timeout meanwhile is not unhandled
  const port = await new Promise<number>((resolve, reject) => {
    server?.once('error', (err) =>
      reject(new SvirtError('SVIRT_ERR_MIGRATE', `cannot listen on ${addr}: ${err.message}`, { cause: err })),
    );
    server?.listen(0, addr, () => {
      const a = server?.address();
      resolve(typeof a === 'object' && a ? a.port : 0);
    });
  });
  return {
    port,
    accepted,
    close() {
      clearTimeout(timer);
      server?.close();
    },
  };
}

/** Connects to the destination's stream address; the socket stays paused. */
export function connectStream(host: string, port: number, timeoutMs: number): Promise<Socket> {
  const s = connect({ host, port });
  s.pause();
  return connectWithin(
    s,
    timeoutMs,
    () => new SvirtError('SVIRT_ERR_MIGRATE', `cannot reach ${host}:${port}: no answer within ${timeoutMs} ms`),
    (err) => new SvirtError('SVIRT_ERR_MIGRATE', `cannot reach ${host}:${port}: ${err.message}`, { cause: err }),
  );
}

/** `tcp:HOST:PORT` (libvirt's uri_out) or `tcp://HOST:PORT`. */
export function parseStreamUri(uri: string): { host: string; port: number } {
  const m = /^tcp:(?:\/\/)?(\[[0-9a-fA-F:]+\]|[^:/]+):(\d+)\/?$/.exec(uri);
  const port = Number(m?.[2]);
  if (!m || !(port > 0 && port < 65536))
    throw new SvirtError('SVIRT_ERR_MIGRATE', `not a migration URI svirt can use: '${uri}' (tcp:HOST:PORT)`);
  return { host: (m[1] as string).replace(/^\[|\]$/g, ''), port };
}
