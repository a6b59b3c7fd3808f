/**
 * `svirt serve`: libvirt's remote protocol on a UNIX socket (mode 0600) and its read-only
 * twin `PATH-ro` (mode 0666, only procedures that change nothing). Every procedure goes
 * through the one Hypervisor of this server, on the same store as the CLI.
 *
 * Any local user can connect to PATH-ro, so what its clients may take is capped apart
 * (limits.ts): a number of clients and of request bytes below the server's own, so the
 * read-write socket is always served.
 */
import { RemoteGate } from '../access/remote-gate.js';
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { exitSettled, notifySocketPath } from '../lifecycle/exit-notify.js';
import type { Hypervisor } from '../lifecycle/hypervisor.js';
import { makeRuntimeDirs } from '../lifecycle/runtime-dir.js';
import { RemoteConnection } from './connection.js';
import { DomainEventHub } from './events.js';
import { ExitNotifyListener } from './exit-notify-listener.js';
import { connectUri, qemuVersion } from './host-info.js';
import { ByteBudget, DEFAULT_LIMITS, clientLimits, type ClientLimits, type ServeLimits } from './limits.js';
import { procedureTable, type ServerServices } from './procedures/index.js';
import { claimPath, listenAt } from './socket-path.js';
import type { Identity } from '../access/identity.js';
import type { TlsListenOptions, TlsListener } from './tls-listener.js';

export { defaultSocketPath, listening } from './socket-path.js';

export interface RemoteServerOptions {
  readonly hv: Hypervisor;
  /** The read-write socket; the read-only one is `${socketPath}-ro`. */
  readonly socketPath: string;
  /** One line per event worth an operator's attention (default: nothing). */
  readonly log?: (line: string) => void;
  /** Also log every call with its latency. */
  readonly debug?: boolean;
  /** Caps on clients, request bytes and idle time (default DEFAULT_LIMITS). */
  readonly limits?: ServeLimits;
  /** Also listen for `qemu+tls://` clients (tls-listener.ts). */
  readonly tls?: Pick<TlsListenOptions, 'host' | 'port' | 'creds' | 'verifyClient' | 'handshakeTimeoutMs' | 'maxPending'>;
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
  private readonly readonlyClients = new Set<RemoteConnection>();
  private readonly calls = new Set<Promise<void>>();
  readonly limits: ServeLimits;
  private readonly budget: ByteBudget;
  private readonly readonlyBudget: ByteBudget;
  private readonly clientLimits: { readonly rw: ClientLimits; readonly ro: ClientLimits };
  private idleTimer: NodeJS.Timeout | undefined;
  /** Connections refused since the last log line about it, by socket (logged at most every 10 s). */
  private readonly refused = { rw: 0, ro: 0, loggedAt: 0 };
  private nextId = 1;
  private current: Promise<boolean> | undefined;
  private next: Promise<boolean> | undefined;
  private notify: ExitNotifyListener | undefined;
  private readonly events: DomainEventHub;
  private readonly tlsOptions: RemoteServerOptions['tls'];
  private tlsListener: TlsListener | undefined;

  constructor(o: RemoteServerOptions) {
    this.hv = o.hv;
    this.socketPath = o.socketPath;
    this.tlsOptions = o.tls;
    this.roSocketPath = `${o.socketPath}-ro`;
    this.log = o.log ?? (() => undefined);
    this.debug = o.debug ?? false;
    this.limits = o.limits ?? DEFAULT_LIMITS;
    this.budget = new ByteBudget(this.limits.maxBufferedBytes);
    this.readonlyBudget = new ByteBudget(this.limits.maxReadonlyBufferedBytes, this.budget);
    this.clientLimits = { rw: clientLimits(this.limits, false), ro: clientLimits(this.limits, true) };
    let version: Promise<number> | undefined;
    this.events = new DomainEventHub(o.hv, this.log);
    this.services = {
      hv: o.hv,
      uri: connectUri(process.getuid?.() ?? 0),
      qemuVersion: () => (version ??= qemuVersion()),
      events: this.events,
      // Rules are read once, here: a bad rules file stops the server before it listens (fail closed).
      access: RemoteGate.open(o.hv.paths.stateDir, o.hv.store),
    };
  }

  /** Clients connected right now. */
  get connections(): number {
    return this.clients.size;
  }

  /** The socket the state dir's monitors tell this server on that QEMU exited (exit-notify-listener.ts). */
  get notifyPath(): string | undefined {
    return this.notify?.path;
  }

  /** The TCP port of the TLS listener, undefined without one. */
  get tlsPort(): number | undefined {
    return this.tlsListener?.port;
  }

  async listen(): Promise<void> {
    // First: a second serve of this state dir is refused before it touches any socket.
    makeRuntimeDirs(this.hv.paths);
    this.notify = await ExitNotifyListener.open({
      path: notifySocketPath(this.hv.paths),
      cleanup: async (pid, signalled) => {
        const done = (await this.reconcile()) && exitSettled(this.hv.env, pid);
        this.events.changed({ exited: { pid, signalled } });
        return done;
      },
      changed: async (verb, reports) => {
        // The verb's own word of each guest it touched, told at once and in the order the lines
        // came: a look later (after the reconcile, or after the next verb) could see a later state.
        if (reports) this.events.reported({ what: verb }, reports);
        const done = await this.reconcile();
        if (!reports) this.events.changed({ what: verb });
        return done;
      },
      log: this.log,
      debug: this.debug,
    });
    await claimPath(this.socketPath);
    await claimPath(this.roSocketPath);
    for (const [path, ro, mode] of [
      // Open to all only when a rule may admit another user; ConnectOpen then checks the peer (remote-gate.ts).
      [this.socketPath, false, this.services.access.admitsOthers ? 0o666 : 0o600],
      [this.roSocketPath, true, 0o666],
    ] as const) {
      const server = createServer((socket) => this.accept(socket, ro));
      server.on('error', (err) => this.log(`socket "${path}": ${err.message}`));
      await listenAt(server, path, mode);
      this.servers.push(server);
    }
    if (this.tlsOptions) {
      const { TlsListener } = await import('./tls-listener.js');
      this.tlsListener = await TlsListener.open({
        ...this.tlsOptions,
        hasRoom: () => this.clients.size < this.limits.maxClients,
        admit: (id) => this.services.access.admitTls(id),
        serve: (socket, id) => this.accept(socket, false, id),
        log: this.log,
        debug: this.debug,
      });
    }
    if (this.limits.idleTimeoutMs > 0) {
      const every = Math.max(100, Math.min(1000, this.limits.idleTimeoutMs / 4));
      this.idleTimer = setInterval(() => this.closeIdle(), every);
      this.idleTimer.unref();
    }
  }

  /**
   * Closes clients that sent no message for the idle timeout: every read-only client (any
   * local user holds a slot with it), and read-write clients that never opened the
   * connection. Root's opened connections stay: python-libvirt without an event loop sends
   * no keepalive, and only root can connect there.
   */
  private closeIdle(): void {
    const now = Date.now();
    for (const c of this.clients) {
      if (!c.session.roSocket && c.session.opened) continue;
      const idle = c.idleFor(now);
      if (idle >= this.limits.idleTimeoutMs) c.expire(idle);
    }
  }

  /** Over its cap, a new client is closed at once (before it costs anything but the accept). */
  private admit(socket: Socket, ro: boolean): boolean {
    const full = this.clients.size >= this.limits.maxClients;
    const roFull = ro && this.readonlyClients.size >= this.limits.maxReadonlyClients;
    if (!full && !roFull) return true;
    socket.destroy();
    this.refused[ro ? 'ro' : 'rw']++;
    const now = Date.now();
    if (now - this.refused.loggedAt >= 10_000) {
      const why = roFull
        ? `${this.readonlyClients.size} read-only clients connected (at most ${this.limits.maxReadonlyClients})`
        : `${this.clients.size} clients connected (at most ${this.limits.maxClients})`;
      this.log(
        `refusing new clients: ${why}; refused ${this.refused.ro} read-only, ${this.refused.rw} read-write since the last report`,
      );
      this.refused.ro = 0;
      this.refused.rw = 0;
      this.refused.loggedAt = now;
    }
    return false;
  }

  /** `identity`: a TLS client's, established by its handshake (socket clients': SO_PEERCRED at accept). */
  private accept(socket: Socket, ro: boolean, identity?: Identity): void {
    if (!this.admit(socket, ro)) return;
    const c = new RemoteConnection({
      id: this.nextId++,
      socket,
      ...(identity ? { identity } : {}),
      roSocket: ro,
      services: this.services,
      table: this.table,
      reconcile: async () => {
        await this.reconcile();
      },
      log: this.log,
      debug: this.debug,
      limits: ro ? this.clientLimits.ro : this.clientLimits.rw,
      budget: ro ? this.readonlyBudget : this.budget,
      onClose: (conn) => {
        this.clients.delete(conn);
        this.readonlyClients.delete(conn);
      },
      track: (call) => {
        this.calls.add(call);
        void call.finally(() => this.calls.delete(call));
      },
    });
    this.clients.add(c);
    if (ro) this.readonlyClients.add(c);
  }

  /**
   * hv.reconcile() before a call, as the CLI does per command. Calls that arrive while one
   * runs share the next run, which starts after it: each caller's reconcile begins after its
   * call arrived, and 20 clients cause at most two runs at a time, not twenty. False when
   * the run failed as a whole (logged).
   */
  reconcile(): Promise<boolean> {
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

  private async reconcileOnce(): Promise<boolean> {
    try {
      const cleaned = await this.hv.reconcile();
      if (cleaned.length > 0) this.log(`reconcile: cleaned up ${cleaned.join(', ')} (QEMU gone)`);
      return true;
    } catch (err) {
      // One guest whose cleanup fails must not fail every call of every client; the next call retries.
      this.log(`reconcile failed: ${err instanceof Error ? err.message : String(err)}`);
      return false;
    }
  }

  /**
   * Stops listening, lets calls that run finish (a start or save cut in the middle would be
   * left to the next reconcile), then ends every client and removes both sockets.
   */
  async close(graceMs = 60_000): Promise<void> {
    clearInterval(this.idleTimer);
    this.events.close();
    const closed = this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    const tlsClosed = this.tlsListener?.close();
    this.tlsListener = undefined;
    // Cleanups under way answer their monitors; past the grace the monitors run their hooks.
    const notified = this.notify?.close(graceMs);
    this.notify = undefined;
    if (this.calls.size > 0) {
      this.log(`waiting for ${this.calls.size} call(s) to finish`);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(this.calls), new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
    }
    for (const c of this.clients) c.destroy();
    await Promise.all([...closed, notified, tlsClosed]);
    this.servers.length = 0;
    for (const path of [this.socketPath, this.roSocketPath]) {
      // net.Server.close() unlinks its socket; this catches a path left by an earlier failure.
      if (existsSync(path) && lstatSync(path).isSocket()) unlinkSync(path);
    }
  }
}
