/** A bare libvirt-protocol client over a UNIX socket, for hostile and edge-case messages. */
import { connect, type Socket } from 'node:net';
import {
  LEN_SIZE,
  MessageStatus,
  MessageType,
  REMOTE_PROGRAM,
  REMOTE_PROTOCOL_VERSION,
  beginFrame,
  endFrame,
  readError,
  readHeader,
  type MessageHeader,
  type WireError,
} from '../../src/remote/protocol.js';
import { XdrReader, XdrWriter } from '../../src/remote/xdr.js';

export interface Reply {
  readonly header: MessageHeader;
  readonly body: Buffer;
  /** The remote_error of an ERROR reply. */
  readonly error?: WireError;
}

/** A call frame of the remote program; `body` writes the arguments. */
export function callFrame(
  proc: number,
  serial: number,
  body?: (w: XdrWriter) => void,
  prog = REMOTE_PROGRAM,
  vers = REMOTE_PROTOCOL_VERSION,
): Buffer {
  const w = new XdrWriter();
  beginFrame(w, { prog, vers, proc, type: MessageType.CALL, serial, status: MessageStatus.OK });
  body?.(w);
  return Buffer.from(endFrame(w));
}

export class RawClient {
  readonly socket: Socket;
  readonly replies: Reply[] = [];
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= LEN_SIZE) {
        const len = this.buf.readUInt32BE(0);
        if (this.buf.length < len) break;
        const frame = this.buf.subarray(0, len);
        this.buf = this.buf.subarray(len);
        const r = new XdrReader(frame, LEN_SIZE);
        const header = readHeader(r);
        const body = frame.subarray(r.offset);
        const error = header.status === MessageStatus.ERROR ? readError(new XdrReader(body)) : undefined;
        this.replies.push({ header, body, ...(error ? { error } : {}) });
      }
      this.wake();
    });
    socket.on('error', () => undefined); // EPIPE/ECONNRESET after the server closed: the test looks at `closed`
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static open(path: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect(path);
      s.once('connect', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(b: Buffer): void {
    if (!this.closed) this.socket.write(b);
  }

  /** Waits until `cond` holds, the socket closes, or `ms` pass; returns whether `cond` holds. */
  async until(cond: () => boolean, ms = 5000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!cond() && !this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return cond();
  }

  /** Sends a call and waits for its reply (by serial). */
  async call(frame: Buffer, serial: number, ms = 10_000): Promise<Reply> {
    this.send(frame);
    await this.until(() => this.replies.some((r) => r.header.serial === serial && r.header.type === MessageType.REPLY), ms);
    const reply = this.replies.find((r) => r.header.serial === serial && r.header.type === MessageType.REPLY);
    if (!reply) throw new Error(`no reply to serial ${serial} (closed: ${this.closed})`);
    return reply;
  }

  /** Waits for the server to close this connection. */
  async closedByServer(ms = 5000): Promise<boolean> {
    return this.until(() => this.closed, ms);
  }

  close(): void {
    this.socket.destroy();
  }
}
