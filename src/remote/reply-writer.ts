/**
 * What one client is sent, in order, including file descriptors (libvirt's REPLY_WITH_FDS).
 *
 * libvirt passes fds after the message that announces them: the message (header type
 * REPLY_WITH_FDS, then the count, then the body) is written whole, then each fd goes alone
 * with one zero byte (sendmsg, SCM_RIGHTS), which the client reads with recvmsg before its
 * next message. So nothing else may reach the socket between the message and its fds: once
 * such a message is written, every later write waits here until Node has handed the message
 * to the kernel (its write callback) and the fds have been sent; then they follow in order.
 *
 * Only a local UNIX connection passes fds (`fd` is its socket); the fds given here are owned
 * from then on and closed once sent, or when the connection goes.
 */
import { closeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { sendFds } from '../host/native.js';

/** How long one fd may wait for room in the socket before the client is given up (ms). */
const PASS_TIMEOUT_MS = 10_000;
const ONE_ZERO_BYTE = Buffer.alloc(1);

/**
 * The fd of a local UNIX connection (`fd`, its socket's), the only kind fds can be passed
 * over; undefined for a TLS one (encrypted, and its fd is not the client's stream) or a TCP one
 * (it has a remote address family).
 */
export function localUnixFd(socket: Socket, fd: number | undefined): number | undefined {
  if ((socket as { encrypted?: unknown }).encrypted === true || socket.remoteFamily !== undefined) return undefined;
  return fd;
}

interface WithFds {
  readonly frame: Buffer;
  readonly fds: readonly number[];
}

export class ReplyWriter {
  /** Writes waiting for fds to go out first; undefined when nothing waits. */
  private gate: (Buffer | WithFds)[] | undefined;
  private gatedBytes = 0;
  private readonly owned = new Set<number>();
  private ending = false;
  private closed = false;

  constructor(
    private readonly socket: Socket,
    /** The socket's fd when it is a local UNIX connection, else undefined (no fd passing). */
    private readonly fd: number | undefined,
    /** The connection cannot go on (an fd could not be sent): end it. */
    private readonly onFail: (why: string) => void,
    /** What waited has gone out (reading may resume). */
    private readonly onFlushed: () => void,
  ) {}

  get canPassFds(): boolean {
    return this.fd !== undefined;
  }

  /** Bytes written and not yet taken by the kernel, with those still waiting here. */
  get pending(): number {
    return this.socket.writableLength + this.gatedBytes;
  }

  /** Writes a message (after the connection's end() only what waited before it goes). */
  write(buf: Buffer): void {
    if (this.closed) return;
    if (this.gate) {
      this.gate.push(buf);
      this.gatedBytes += buf.length;
    } else {
      this.socket.write(buf);
    }
  }

  /** Writes a message and then passes `fds` (owned from now on, closed once sent). */
  writeWithFds(frame: Buffer, fds: readonly number[]): void {
    for (const fd of fds) this.owned.add(fd);
    if (this.closed || this.fd === undefined) return this.closeOwned(fds);
    if (this.gate) {
      this.gate.push({ frame, fds });
      this.gatedBytes += frame.length;
      return;
    }
    this.gate = [];
    this.socket.write(frame, (err) => {
      if (err) return this.close();
      void this.pass(fds);
    });
  }

  /** Ends the socket once what waits here has gone out. */
  end(): void {
    if (this.ending) return;
    this.ending = true;
    if (!this.gate) this.socket.end();
  }

  /** The connection is gone: fds not sent are closed, nothing more is written. */
  close(): void {
    this.closed = true;
    this.gate = undefined;
    this.gatedBytes = 0;
    this.closeOwned([...this.owned]);
  }

  /** Closes fds that will not be sent (their call failed, or the client is gone). */
  discard(fds: readonly number[]): void {
    for (const fd of fds) this.owned.add(fd);
    this.closeOwned(fds);
  }

  private closeOwned(fds: readonly number[]): void {
    for (const fd of fds) {
      if (!this.owned.delete(fd)) continue;
      try {
        closeSync(fd);
      } catch {
        // already closed: nothing of the client's depends on it
      }
    }
  }

  private async pass(fds: readonly number[]): Promise<void> {
    const sock = this.fd as number;
    for (const fd of fds) {
      const deadline = Date.now() + PASS_TIMEOUT_MS;
      for (;;) {
        if (this.closed) return;
        try {
          sendFds(sock, ONE_ZERO_BYTE, [fd]);
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'EAGAIN' || Date.now() > deadline) {
            this.onFail(`cannot pass a file descriptor: ${err instanceof Error ? err.message : String(err)}`);
            return this.close();
          }
          // The client has not read what came before: wait for room, bounded.
          await new Promise((r) => setTimeout(r, 5));
        }
      }
      this.closeOwned([fd]);
    }
    const waiting = this.gate ?? [];
    this.gate = undefined;
    this.gatedBytes = 0;
    for (const item of waiting) {
      if (Buffer.isBuffer(item)) this.write(item);
      else this.writeWithFds(item.frame, item.fds);
    }
    if (this.ending && !this.gate && !this.closed) this.socket.end();
    this.onFlushed();
  }
}
