/**
 * A small client of libvirt's remote protocol, for the calls svirt makes to another host's
 * serve (migration's Prepare and Finish). It speaks to the socket a libvirt URI names
 * (`qemu+unix:///system?socket=PATH`); replies are matched by serial, events and keepalive
 * messages are ignored, every call is bounded in time and a frame in size.
 */
import { connect, type Socket } from 'node:net';
import { SvirtError } from '../errors.js';
import { connectWithin } from '../host/connect-within.js';
import {
  LEN_SIZE,
  MESSAGE_MAX,
  MessageStatus,
  MessageType,
  REMOTE_PROGRAM,
  STRING_MAX,
  callFrame,
  readError,
  readHeader,
} from './protocol.js';
import { XdrReader, type XdrWriter } from './xdr.js';

/** Where a libvirt URI's client connects: the socket of `qemu+unix://` (or `qemu://`, the default socket). */
export function socketOfUri(uri: string, defaultSocket: string): string {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    throw new SvirtError('SVIRT_ERR_USAGE', `not a libvirt URI: '${uri}'`);
  }
  if (u.protocol !== 'qemu+unix:' && u.protocol !== 'qemu:') {
    throw new SvirtError(
      'SVIRT_ERR_USAGE',
      `cannot reach '${uri}': svirt connects to qemu+unix:// URIs (qemu+ssh and qemu+tls: use virsh)`,
    );
  }
  const socket = u.searchParams.get('socket');
  if (socket !== null && !socket.startsWith('/'))
    throw new SvirtError('SVIRT_ERR_USAGE', `the socket of '${uri}' is not an absolute path`);
  return socket ?? defaultSocket;
}

interface Waiter {
  resolve(r: XdrReader): void;
  reject(e: Error): void;
}

export class RemoteClient {
  private serial = 1;
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiting = new Map<number, Waiter>();
  private closedWith: Error | undefined;

  private constructor(
    private readonly socket: Socket,
    readonly target: string,
  ) {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (err) => this.fail(new SvirtError('SVIRT_ERR_REMOTE', `connection to ${target} failed: ${err.message}`)));
    socket.on('close', () => this.fail(new SvirtError('SVIRT_ERR_REMOTE', `${target} closed the connection`)));
  }

  /** Connects to the serve at `path` and opens the connection (ConnectOpen) for `uri`. */
  static async open(path: string, uri = 'qemu:///system', timeoutMs = 10_000): Promise<RemoteClient> {
    const socket = await connectWithin(
      connect(path),
      timeoutMs,
      () => new SvirtError('SVIRT_ERR_REMOTE', `cannot connect to ${path}: no answer within ${timeoutMs} ms`),
      (err) => new SvirtError('SVIRT_ERR_REMOTE', `cannot connect to ${path}: ${err.message}`, { cause: err }),
    );
    const c = new RemoteClient(socket, path);
    await c.call(1, (w) => w.optional(uri, (x, v) => x.string(v, STRING_MAX)).uint(0), timeoutMs); // ConnectOpen
    return c;
  }

  /** One call: resolves with a reader over the reply's body, rejects with the remote error's message. */
  call(proc: number, args?: (w: XdrWriter) => void, timeoutMs = 60_000): Promise<XdrReader> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const serial = this.serial++;
    const frame = callFrame(proc, serial, args);
    return new Promise<XdrReader>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(serial);
        reject(new SvirtError('SVIRT_ERR_REMOTE', `${this.target}: no reply to procedure ${proc} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(serial, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.socket.write(frame);
    });
  }

  close(): void {
    if (!this.closedWith) {
      // ConnectClose is a courtesy: the server cleans up a dropped connection the same way.
      this.closedWith = new SvirtError('SVIRT_ERR_REMOTE', 'connection closed');
      this.socket.destroy();
    }
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    while (this.buf.length >= LEN_SIZE) {
      const len = this.buf.readUInt32BE(0);
      if (len < LEN_SIZE + 24 || len - LEN_SIZE > MESSAGE_MAX) {
        this.fail(new SvirtError('SVIRT_ERR_REMOTE', `${this.target} sent a frame of ${len} bytes`));
        this.socket.destroy();
        return;
      }
      if (this.buf.length < len) return;
      const frame = this.buf.subarray(0, len);
      this.buf = this.buf.subarray(len);
      const r = new XdrReader(frame, LEN_SIZE);
      const h = readHeader(r);
      if (h.prog !== REMOTE_PROGRAM || h.type !== MessageType.REPLY) continue; // events, keepalive
      const waiter = this.waiting.get(h.serial);
      if (!waiter) continue;
      this.waiting.delete(h.serial);
      if (h.status === MessageStatus.ERROR) {
        const e = readError(r);
        waiter.reject(new SvirtError('SVIRT_ERR_REMOTE', e.message, { details: { code: e.code, domain: e.domain } }));
      } else waiter.resolve(r);
    }
  }

  private fail(err: Error): void {
    this.closedWith ??= err;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }
}
