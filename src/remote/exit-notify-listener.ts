/**
 * `svirt serve`'s end of `svirt-monitor --notify`: the UNIX socket in the state dir's root-only
 * monitor dir on which a guest's monitor (or its backup) says that QEMU exited, as one line
 * `exited <pid> <exit N | signal N | unknown>`. Serve reconciles and answers `done` (or
 * `failed`: the monitor then runs its `svirt reconcile` hook, as it does when nobody listens).
 * A CLI verb that changed a guest says `changed <verb>` the same way, with the state of each
 * guest it touched (changed-line.ts), so serve sends its events.
 *
 * One serve per state dir: a live socket there refuses a second serve; a stale one (a socket
 * nobody accepts on) is replaced. The socket is bound inside the opened dir (no symlink on the
 * way), at mode 0600, and removed at close if it is still this server's.
 *
 * Every peer may be hostile or slow: only svirt's own uid is served (SO_PEERCRED); the line is
 * at most `lineMax` bytes and must come within `readTimeoutMs`; at most `maxConnections` are
 * held, and a newcomer past that evicts the oldest one that has not sent its line yet (a real
 * monitor sends it as soon as it connects), so a crowd of silent clients cannot lock monitors out.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { peerCred } from '../host/native.js';
import { socketFd } from './connection.js';
import { bindOwn, type OwnSocket } from './notify-socket.js';
import { CHANGED_LINE_MAX, parseReports } from './changed-line.js';
import type { TouchedReport } from '../store/touched.js';

export interface NotifyLimits {
  /** Connections held at once. */
  readonly maxConnections: number;
  /** Bytes of the one line a client sends, newline included. */
  readonly lineMax: number;
  /** A client that has not sent its line by then is closed. */
  readonly readTimeoutMs: number;
}

/** A monitor's line is about 30 bytes, a CLI's up to 8 kB; each comes right after its connect. */
export const NOTIFY_LIMITS: NotifyLimits = { maxConnections: 64, lineMax: CHANGED_LINE_MAX, readTimeoutMs: 1000 };

export interface ExitNotifyOptions {
  /** `<runtime root>/monitor/notify.sock` (lifecycle/exit-notify.ts). */
  readonly path: string;
  /** Reconciles, then says whether the QEMU that had this pid is cleaned up (`signalled`: it was killed). */
  readonly cleanup: (pid: number, signalled: boolean) => Promise<boolean>;
  /**
   * A CLI verb changed a guest (`changed VERB [REPORTS]`, src/cli/notify-serve.ts): events are
   * sent, from the states it reports of the guests it touched where it says them.
   */
  readonly changed?: (verb: string, reports?: readonly TouchedReport[]) => Promise<boolean>;
  readonly log: (line: string) => void;
  /** Also log every notification with its latency. */
  readonly debug?: boolean;
  readonly limits?: NotifyLimits;
}

const LINE = /^(?:exited ([1-9]\d{0,9}) (exit \d{1,3}|signal \d{1,2}|unknown)|changed ([a-z][a-z-]{0,30})(?: (\[.*\]))?)\n$/;

/** Why clients were closed unanswered since the last log line about it (logged at most every 10 s). */
type Dropped = Record<'uid' | 'long' | 'malformed' | 'silent' | 'evicted', number>;

interface Client {
  readonly socket: Socket;
  readonly since: number;
  /** Its line came: it waits for the cleanup and is never evicted. */
  answering: boolean;
}

export class ExitNotifyListener {
  readonly path: string;
  private readonly o: ExitNotifyOptions;
  private readonly limits: NotifyLimits;
  private readonly uid = process.geteuid?.() ?? 0;
  private readonly clients = new Set<Client>();
  private readonly answers = new Set<Promise<void>>();
  private readonly dropped: Dropped = { uid: 0, long: 0, malformed: 0, silent: 0, evicted: 0 };
  private droppedLoggedAt = 0;

  private constructor(
    o: ExitNotifyOptions,
    private readonly sock: OwnSocket,
    private readonly server: Server,
  ) {
    this.o = o;
    this.path = o.path;
    this.limits = o.limits ?? NOTIFY_LIMITS;
    server.on('connection', (socket: Socket) => this.accept(socket));
    server.on('error', (err) => o.log(`notify socket "${o.path}": ${err.message}`));
  }

  /** Claims the socket (see the file comment) and listens on it. */
  static async open(o: ExitNotifyOptions): Promise<ExitNotifyListener> {
    const sock = await bindOwn(o.path, 'listen for the monitors in');
    try {
      const server = createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ fd: sock.fd }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      return new ExitNotifyListener(o, sock, server);
    } catch (err) {
      sock.release();
      throw err;
    }
  }

  /** Clients connected right now. */
  get connections(): number {
    return this.clients.size;
  }

  private accept(socket: Socket): void {
    socket.on('error', () => undefined); // a peer that resets: nothing to answer, nothing to report
    const fd = socketFd(socket);
    let uid: number | undefined;
    try {
      uid = fd === undefined ? undefined : peerCred(fd).uid;
    } catch {
      uid = undefined; // unknown credentials: refused below like a stranger
    }
    if (uid !== this.uid) return this.drop(socket, 'uid');
    if (this.clients.size >= this.limits.maxConnections) {
      let oldest: Client | undefined;
      for (const c of this.clients) if (!c.answering && (!oldest || c.since < oldest.since)) oldest = c;
      if (!oldest) return this.drop(socket, 'evicted'); // every slot waits for a cleanup: its monitor runs the hook
      this.closeClient(oldest, 'evicted');
    }
    const client: Client = { socket, since: performance.now(), answering: false };
    this.clients.add(client);
    let buf = Buffer.alloc(0);
    // After the timeout, one turn of the event loop lets a line already received be read first.
    const timer = setTimeout(
      () => setImmediate(() => !client.answering && this.closeClient(client, 'silent')),
      this.limits.readTimeoutMs,
    );
    socket.once('close', () => {
      clearTimeout(timer);
      this.clients.delete(client);
    });
    socket.on('data', (chunk: Buffer) => {
      if (client.answering) return;
      buf = Buffer.concat([buf, chunk]);
      const nl = buf.indexOf(0x0a);
      if (nl < 0) {
        if (buf.length >= this.limits.lineMax) this.closeClient(client, 'long');
        return;
      }
      const m = nl + 1 === buf.length && nl < this.limits.lineMax ? LINE.exec(buf.toString('utf8')) : null;
      if (!m || (m[1] === undefined && (m[3] === undefined || !this.o.changed))) return this.closeClient(client, 'malformed');
      const reports = m[4] === undefined ? undefined : parseReports(m[4]);
      if (m[4] !== undefined && reports === undefined) return this.closeClient(client, 'malformed');
      client.answering = true;
      clearTimeout(timer);
      socket.pause();
      if (m[1] !== undefined)
        this.answer(client, `QEMU ${m[1]} exited`, () => this.o.cleanup(Number(m[1]), /^signal/.test(m[2] ?? '')));
      else
        this.answer(
          client,
          `${m[3] ?? ''} changed a guest`,
          () => this.o.changed?.(m[3] ?? '', reports) ?? Promise.resolve(false),
        );
    });
  }

  private answer(client: Client, what: string, act: () => Promise<boolean>): void {
    const t0 = performance.now();
    const p = act()
      .catch((err: unknown) => {
        this.o.log(`cleanup after ${what} failed: ${err instanceof Error ? err.message : String(err)}`);
        return false;
      })
      .then((done) => {
        if (this.o.debug)
          this.o.log(`${what}: ${done ? 'cleaned up' : 'not cleaned up'} in ${(performance.now() - t0).toFixed(1)} ms`);
        // Closed once the answer is in the monitor's queue: a peer that never reads holds nothing.
        if (!client.socket.destroyed) client.socket.end(done ? 'done\n' : 'failed\n', () => client.socket.destroy());
      });
    this.answers.add(p);
    void p.finally(() => this.answers.delete(p));
  }

  private closeClient(client: Client, why: keyof Dropped): void {
    this.clients.delete(client);
    this.drop(client.socket, why);
  }

  private drop(socket: Socket, why: keyof Dropped): void {
    socket.destroy();
    this.dropped[why]++;
    const now = Date.now();
    if (now - this.droppedLoggedAt < 10_000) return;
    const d = this.dropped;
    this.o.log(
      `notify socket: closed unanswered: ${d.uid} of another uid, ${d.long} with too long a line, ${d.malformed} malformed, ` +
        `${d.silent} silent, ${d.evicted} evicted (past ${this.limits.maxConnections} connections) since the last report`,
    );
    for (const k of Object.keys(d) as (keyof Dropped)[]) d[k] = 0;
    this.droppedLoggedAt = now;
  }

  /**
   * Stops accepting, closes clients that sent nothing, lets the cleanups under way answer
   * (within graceMs: past it their monitors run the hook), then removes the socket if it is
   * still this server's.
   */
  async close(graceMs = 60_000): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.clients) if (!c.answering) this.closeClient(c, 'silent');
    if (this.answers.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(this.answers), new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
    }
    for (const c of this.clients) c.socket.destroy();
    await closed;
    this.sock.remove();
  }
}
