import { SvirtError } from '../errors.js';
import { closeSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { LineChannel } from '../host/fd-channel.js';
import { connectUnix, connectUnixAt, openPath } from '../host/native.js';
import { withSocketLabel } from '../host/selinux-socket.js';

export interface QmpError {
  readonly class: string;
  readonly desc: string;
}

/** A QMP command failed inside QEMU (the connection is fine). */
export class QmpCommandError extends SvirtError {
  readonly qmpClass: string;
  constructor(command: string, err: QmpError) {
    super('SVIRT_ERR_QMP', `QMP ${command} failed: ${err.desc}`, { details: { command, class: err.class } });
    this.qmpClass = err.class;
  }
}

/**
 * The longest QMP line svirt reads (as libvirt's 10 MiB response limit): QEMU runs the guest's
 * code, and a compromised one could otherwise send one endless line into svirt's memory.
 */
export const QMP_MAX_LINE = 10 * 1024 * 1024;

/** How many events a connection keeps for waitEvent and its caller (the newest; a flood drops the oldest). */
export const QMP_MAX_EVENTS = 1000;

interface Pending {
  readonly command: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
}

export interface QmpEvent {
  readonly event: string;
  readonly data?: unknown;
}

/**
 * A monotonic clock in ms (libuv's, as performance.now() is): the global `performance` loads
 * perf_hooks and ten modules under it on first use, ~2 ms of a fresh `svirt start` (issue 17).
 */
const nowMs = (): number => process.uptime() * 1000;

/**
 * A minimal QMP client: one UNIX socket, line-delimited JSON, commands answered in order
 * (each carries an id anyway). Events are kept for callers that wait for one. The socket is
 * read and written through the addon (host/fd-channel.ts), not node:net.
 */
export class QmpClient {
  private readonly channel: LineChannel;
  private readonly pending = new Map<string, Pending>();
  private nextId = 1;
  private closedError: Error | undefined;
  readonly events: QmpEvent[] = [];
  private eventWaiters: { name: string; resolve: (e: QmpEvent) => void }[] = [];

  private constructor(fd: number) {
    this.channel = new LineChannel(fd, {
      onLine: (line) => this.onLine(line),
      onEnd: (err) => {
        this.fail(err ?? new SvirtError('SVIRT_ERR_QMP', 'QMP connection closed'));
        this.channel.close();
      },
      maxLine: QMP_MAX_LINE,
      tooLong: () => new SvirtError('SVIRT_ERR_QMP', `QMP sent a line longer than ${QMP_MAX_LINE} bytes`),
    });
  }

  /**
   * Connects, reads the greeting and negotiates capabilities. QEMU serves one monitor client at
   * a time and listens with a backlog of one: while another client (another verb, serve, a
   * second process) holds the monitor and one more waits, a connect fails with EAGAIN. That is
   * retried, with a growing pause, until the timeout.
   */
  static async connect(path: string, timeoutMs = 5000, socketLabel?: string): Promise<QmpClient> {
    const deadline = nowMs() + timeoutMs;
    let pauseMs = 2;
    let fd: number;
    for (;;) {
      try {
        fd = connectOnce(path, socketLabel);
        break;
      } catch (err) {
        const busy = (err as NodeJS.ErrnoException).code === 'EAGAIN';
        if (!busy || nowMs() + pauseMs >= deadline) {
          throw busy
            ? new SvirtError('SVIRT_ERR_TIMEOUT', `QMP connect to "${path}": the monitor stayed busy for ${timeoutMs} ms`, {
                cause: err,
              })
            : err;
        }
        await new Promise((r) => setTimeout(r, pauseMs));
        pauseMs = Math.min(50, pauseMs * 2);
      }
    }
    const client = new QmpClient(fd);
    try {
      await client.greeting(timeoutMs);
      await client.execute('qmp_capabilities');
    } catch (err) {
      client.close(); // a socket left open would keep the process alive
      throw err instanceof SvirtError && err.code === 'SVIRT_ERR_TIMEOUT'
        ? new SvirtError(
            'SVIRT_ERR_TIMEOUT',
            `no QMP greeting on "${path}" within ${timeoutMs} ms (QEMU serves one monitor client at a time: is another one connected?)`,
            { cause: err },
          )
        : err;
    }
    return client;
  }

  private greetingResolve: ((v: unknown) => void) | undefined;
  private greetingReject: ((err: Error) => void) | undefined;

  /** Resolves on QMP's greeting; rejects at the timeout or as soon as the connection fails. */
  private greeting(timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (this.closedError) {
        reject(this.closedError);
        return;
      }
      const timer = setTimeout(() => reject(new SvirtError('SVIRT_ERR_TIMEOUT', 'no QMP greeting')), timeoutMs);
      this.greetingResolve = (v) => {
        clearTimeout(timer);
        resolve(v);
      };
      this.greetingReject = (err) => {
        clearTimeout(timer);
        reject(err);
      };
    });
  }

  private onLine(raw: string): void {
    if (this.closedError) return;
    const line = raw.trim();
    if (line === '') return;
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.fail(new SvirtError('SVIRT_ERR_QMP', `QMP sent a line that is not JSON: ${line.slice(0, 80)}`));
      return;
    }
    this.dispatch(msg);
  }

  private dispatch(msg: Record<string, unknown>): void {
    if ('QMP' in msg) {
      this.greetingResolve?.(msg);
      return;
    }
    if (typeof msg['event'] === 'string') {
      const ev: QmpEvent = { event: msg['event'], data: msg['data'] };
      this.events.push(ev);
      if (this.events.length > QMP_MAX_EVENTS) this.events.splice(0, this.events.length - QMP_MAX_EVENTS);
      const waiting = this.eventWaiters.filter((w) => w.name === ev.event);
      this.eventWaiters = this.eventWaiters.filter((w) => w.name !== ev.event);
      for (const w of waiting) w.resolve(ev);
      return;
    }
    const id = String(msg['id']);
    const p = this.pending.get(id);
    if (!p) return; // an answer to nobody (our ids are unique): ignore
    this.pending.delete(id);
    if ('error' in msg) p.reject(new QmpCommandError(p.command, msg['error'] as QmpError));
    else p.resolve(msg['return']);
  }

  private fail(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    // A QEMU that accepted and then exited must not hold a start for the whole timeout.
    this.greetingReject?.(err);
    this.greetingReject = undefined;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  /** Runs one command and returns its `return` value. */
  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = String(this.nextId++);
    return new Promise((resolve, reject) => {
      try {
        this.channel.write(JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id }) + '\n');
      } catch (err) {
        reject(new SvirtError('SVIRT_ERR_QMP', `QMP ${command}: ${(err as Error).message}`, { cause: err }));
        return;
      }
      this.pending.set(id, { command, resolve, reject });
    });
  }

  /**
   * Runs a command whose message carries fds (SCM_RIGHTS): `add-fd`, `getfd`. The fds are
   * duplicated into QEMU; the caller still owns (and closes) its copies.
   */
  async executeWithFds(command: string, args: Record<string, unknown>, fds: readonly number[]): Promise<unknown> {
    if (this.closedError) throw this.closedError;
    const { sendFds } = await import('../host/native.js');
    const id = String(this.nextId++);
    const result = new Promise((resolve, reject) => this.pending.set(id, { command, resolve, reject }));
    const data = Buffer.from(JSON.stringify({ execute: command, arguments: args, id }) + '\n');
    // Our own writes are sequential (each awaited), so nothing is queued ahead of this message.
    for (let tries = 0; ; tries++) {
      try {
        const sent = sendFds(this.fd, data, fds);
        if (sent !== data.length) this.channel.write(data.subarray(sent));
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || tries > 200) {
          this.pending.delete(id);
          throw new SvirtError('SVIRT_ERR_QMP', `cannot pass fds to QEMU for ${command}: ${(err as Error).message}`, {
            cause: err,
          });
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    return result;
  }

  /** `human-monitor-command`: runs an HMP line, returns its text output. */
  async hmp(line: string): Promise<string> {
    return String(await this.execute('human-monitor-command', { 'command-line': line }));
  }

  /** Resolves when the event arrives (or has arrived since connect). */
  waitEvent(name: string, timeoutMs: number): Promise<QmpEvent> {
    const seen = this.events.find((e) => e.event === name);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new SvirtError('SVIRT_ERR_TIMEOUT', `no ${name} event in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.eventWaiters.push({
        name,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }

  /** The raw fd of the socket (for SCM_RIGHTS through the native helper). */
  get fd(): number {
    const fd = this.channel.fd;
    if (fd < 0) throw new SvirtError('SVIRT_ERR_QMP', 'QMP socket has no fd');
    return fd;
  }

  /** Closes the connection; commands still waiting fail. */
  close(): void {
    this.fail(new SvirtError('SVIRT_ERR_QMP', 'QMP connection closed'));
    this.channel.close();
  }
}

/**
 * One connect attempt, in this thread (the socket-create label applies to it): non-blocking, so a
 * full backlog fails at once with EAGAIN (a UNIX socket's connect never waits otherwise).
 */
function connectOnce(path: string, label: string | undefined): number {
  if (Buffer.byteLength(path) <= 100) return withSocketLabel(label, () => connectUnix(path, true));
  // A UNIX socket address holds 107 bytes: a longer path is reached through its directory's fd
  // (opened with no link on the way).
  const dir = openPath(dirname(path));
  try {
    return withSocketLabel(label, () => connectUnixAt(dir, basename(path), true));
  } finally {
    closeSync(dir);
  }
}
