/**
 * `svirt serve`: libvirt's remote protocol on a UNIX socket (mode 0600) and its read-only
 * twin `PATH-ro` (mode 0666, only procedures that change nothing). Every procedure goes
 * through the one Hypervisor of this server, on the same store as the CLI.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { SvirtError, errnoOf } from '../errors.js';
import type { Hypervisor } from '../lifecycle/hypervisor.js';
import { RemoteConnection } from './connection.js';
import { connectUri, qemuVersion } from './host-info.js';
import { procedureTable, type ServerServices } from './procedures/index.js';

export interface RemoteServerOptions {
  readonly hv: Hypervisor;
  /** The read-write socket; the read-only one is `${socketPath}-ro`. */
  readonly socketPath: string;
  /** One line per event worth an operator's attention (default: nothing). */
  readonly log?: (line: string) => void;
  /** Also log every call with its latency. */
  readonly debug?: boolean;
}

/** The default socket: /run/svirt/libvirt-sock for root, $XDG_RUNTIME_DIR/svirt/libvirt-sock otherwise. */
export function defaultSocketPath(env: NodeJS.ProcessEnv, uid: number): string {
  if (uid === 0) return '/run/svirt/libvirt-sock';
  const runtime = env['XDG_RUNTIME_DIR'];
  if (!runtime) throw new SvirtError('SVIRT_ERR_USAGE', 'XDG_RUNTIME_DIR is not set: give the socket with --socket PATH');
  return `${runtime}/svirt/libvirt-sock`;
}

/** Is something accepting connections on this socket path? */
function listening(path: string): Promise<boolean> {
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
async function claimPath(path: string): Promise<void> {
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
function listenAt(server: Server, path: string, mode: number): Promise<void> {
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

export class RemoteServer {
  readonly socketPath: string;
  readonly roSocketPath: string;
  private readonly hv: Hypervisor;
  private readonly log: (line: string) => void;
  private readonly debug: boolean;
  private readonly services: ServerServices;
  private readonly table = procedureTable();
  private readonly servers: Server[] = [];
  private readonly clients = new Set<RemoteConnection>();
  private readonly calls = new Set<Promise<void>>();
  private nextId = 1;
  private current: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(o: RemoteServerOptions) {
    this.hv = o.hv;
    this.socketPath = o.socketPath;
    this.roSocketPath = `${o.socketPath}-ro`;
    this.log = o.log ?? (() => undefined);
    this.debug = o.debug ?? false;
    let version: number | undefined;
    this.services = {
      hv: o.hv,
      uri: connectUri(process.getuid?.() ?? 0),
      qemuVersion: () => (version ??= qemuVersion()),
    };
  }

  /** Clients connected right now. */
  get connections(): number {
    return this.clients.size;
  }

  async listen(): Promise<void> {
    await claimPath(this.socketPath);
    await claimPath(this.roSocketPath);
    for (const [path, ro, mode] of [
      [this.socketPath, false, 0o600],
      [this.roSocketPath, true, 0o666],
    ] as const) {
      const server = createServer((socket) => this.accept(socket, ro));
      server.on('error', (err) => this.log(`socket "${path}": ${err.message}`));
      await listenAt(server, path, mode);
      this.servers.push(server);
    }
  }

  private accept(socket: Socket, ro: boolean): void {
    const c = new RemoteConnection({
      id: this.nextId++,
      socket,
      roSocket: ro,
      services: this.services,
      table: this.table,
      reconcile: () => this.reconcile(),
      log: this.log,
      debug: this.debug,
      onClose: (conn) => this.clients.delete(conn),
      track: (call) => {
        this.calls.add(call);
        void call.finally(() => this.calls.delete(call));
      },
    });
    this.clients.add(c);
  }

  /**
   * hv.reconcile() before a call, as the CLI does per command. Calls that arrive while one
   * runs share the next run, which starts after it: each caller's reconcile begins after its
   * call arrived, and 20 clients cause at most two runs at a time, not twenty.
   */
  reconcile(): Promise<void> {
    if (this.current === undefined) {
      this.current = this.reconcileOnce().finally(() => {
        this.current = undefined;
      });
      return this.current;
    }
    this.next ??= this.current.then(() => {
      this.next = undefined;
      return this.reconcile();
    });
    return this.next;
  }

  private async reconcileOnce(): Promise<void> {
    try {
      const cleaned = await this.hv.reconcile();
      if (cleaned.length > 0) this.log(`reconcile: cleaned up ${cleaned.join(', ')} (QEMU gone)`);
    } catch (err) {
      // One guest whose cleanup fails must not fail every call of every client; the next call retries.
      this.log(`reconcile failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /**
   * Stops listening, lets calls that run finish (a start or save cut in the middle would be
   * left to the next reconcile), then ends every client and removes both sockets.
   */
  async close(graceMs = 60_000): Promise<void> {
    const closed = this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    if (this.calls.size > 0) {
      this.log(`waiting for ${this.calls.size} call(s) to finish`);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(this.calls), new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
    }
    for (const c of this.clients) c.destroy();
    await Promise.all(closed);
    this.servers.length = 0;
    for (const path of [this.socketPath, this.roSocketPath]) {
      // net.Server.close() unlinks its socket; this catches a path left by an earlier failure.
      if (existsSync(path) && lstatSync(path).isSocket()) unlinkSync(path);
    }
  }
}
