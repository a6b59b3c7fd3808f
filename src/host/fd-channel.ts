/**
 * A stream socket read as lines and written on Node's event loop, through the addon's watch
 * (native/fd-watch.c), not node:net. A fresh `svirt start` talks to two sockets, the monitor's
 * status lines and QEMU's QMP; node:net, the stream modules it loads and a Socket's cold first
 * read and write cost ~6 ms of its CPU (docs/startup.md, "Children, and the exit").
 *
 * Lines are split on the byte `\n` (never part of a multi-byte UTF-8 character) and decoded
 * whole, so a character split between two reads arrives intact.
 */
import { closeSync } from 'node:fs';
import { watchClose, watchFd, watchWrite, type WatchHandle } from './native.js';

export interface LineChannelOptions {
  /** Called for each complete line, without its `\n`. */
  readonly onLine: (line: string) => void;
  /** Called once: at EOF (no error), on a socket error, or on a line longer than maxLine. Not after close(). */
  readonly onEnd: (err: Error | undefined) => void;
  /** The longest line read, in bytes; a longer one ends the channel with tooLong(). */
  readonly maxLine: number;
  readonly tooLong: () => Error;
}

export class LineChannel {
  /** The socket, the channel's to close; -1 once closed. */
  private socket: number;
  private readonly handle: WatchHandle;
  private readonly opts: LineChannelOptions;
  /** The start of a line: the bytes after the last `\n`, read so far. */
  private parts: Buffer[] = [];
  private partBytes = 0;
  private done = false;

  /** Watches `fd` from now on; the channel owns it. */
  constructor(fd: number, opts: LineChannelOptions) {
    this.socket = fd;
    this.opts = opts;
    try {
      this.handle = watchFd(fd, (chunk, error) => this.read(chunk, error));
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  private read(chunk: Buffer | null, error: 0 | string): void {
    if (this.done) return;
    if (chunk === null) {
      this.end(error === 0 ? undefined : Object.assign(new Error(error), { code: error.split(':')[0] }));
      return;
    }
    let from = 0;
    let nl: number;
    while ((nl = chunk.indexOf(10, from)) >= 0) {
      const piece = chunk.subarray(from, nl);
      from = nl + 1;
      if (this.partBytes + piece.length > this.opts.maxLine) return this.end(this.opts.tooLong());
      const line = this.partBytes === 0 ? piece.toString('utf8') : Buffer.concat([...this.parts, piece]).toString('utf8');
      this.parts = [];
      this.partBytes = 0;
      this.opts.onLine(line);
      if (this.done) return; // the listener closed it
    }
    if (from < chunk.length) {
      this.partBytes += chunk.length - from;
      if (this.partBytes > this.opts.maxLine) return this.end(this.opts.tooLong());
      this.parts.push(chunk.subarray(from)); // each chunk is the addon's fresh copy
    }
  }

  /** Stops reading (once): false if it had stopped already. */
  private stop(): boolean {
    if (this.done) return false;
    this.done = true;
    this.parts = [];
    watchClose(this.handle);
    return true;
  }

  /** Stops reading and calls onEnd; the fd stays open until close(). */
  private end(err: Error | undefined): void {
    if (this.stop()) this.opts.onEnd(err);
  }

  /** Sends the text now, or as the socket takes it; throws (EPIPE, EBADF) once the channel ended. */
  write(data: string | Buffer): void {
    watchWrite(this.handle, typeof data === 'string' ? Buffer.from(data) : data);
  }

  /** The socket's fd (to pass fds over it with sendFds); -1 once closed. */
  get fd(): number {
    return this.socket;
  }

  /** Stops reading and closes the socket; onEnd is not called. Idempotent. */
  close(): void {
    if (this.socket < 0) return;
    this.stop();
    closeSync(this.socket);
    this.socket = -1;
  }
}
