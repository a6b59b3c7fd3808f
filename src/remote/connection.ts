// Long file: one client's framing, state machine and limits act on the same buffers and
// counters; split apart they would need to share every one of them.
/**
 * One client of `svirt serve`: libvirt's framing (a 4-byte length that counts itself, then
 * the header and the XDR body), the per-connection state (auth → open → calls → close),
 * keepalive, and the dispatch of calls. Calls of one client run concurrently, as in libvirtd;
 * replies carry the call's serial. A message that cannot be trusted (bad length, a header or
 * arguments that do not decode, an unknown program) gets an error reply when it has a
 * header, and ends this client only.
 *
 * Memory is bounded (limits.ts): a frame longer than this socket's limit closes the client
 * at once; every byte of a request, from its arrival until its call has replied, is held
 * against the server's budget, and a client whose bytes do not fit is closed. Reading
 * pauses while a client has too many calls or too many bytes running, or too many reply
 * bytes it has not read.
 */
import type { Socket } from 'node:net';
import { peerCred, type PeerCred } from '../host/native.js';
import { describeIdentity, type Identity } from '../access/identity.js';
import { RemoteError, toWireError, VirErr, VirFrom } from './errors.js';
import { procName, type ClientSession, type Procedure, type ServerServices } from './procedures/index.js';
import type { StreamHandler, StreamOut } from './procedures/types.js';
import {
  HEADER_SIZE,
  KEEPALIVE_PROC_PING,
  KEEPALIVE_PROC_PONG,
  KEEPALIVE_PROGRAM,
  KEEPALIVE_PROTOCOL_VERSION,
  LEN_SIZE,
  MessageStatus,
  MessageType,
  REMOTE_PROGRAM,
  REMOTE_PROTOCOL_VERSION,
  beginFrame,
  endFrame,
  readHeader,
  writeError,
  type MessageHeader,
} from './protocol.js';
import type { ByteBudget, ClientLimits } from './limits.js';
import { formatBytes } from '../host/read-input.js';
import { XdrError, XdrReader, XdrWriter } from './xdr.js';
import { QEMU_PROGRAM, tableKey } from './domops-protocol.js';
import { ReplyWriter, localUnixFd } from './reply-writer.js';

/** Calls of one client running at once; past this the server reads no further frame of it (libvirt's max_client_requests is 5). */
const MAX_IN_FLIGHT = 16;
/** Streams one client may hold open (consoles). */
const MAX_STREAMS = 4;
/** Data bytes per STREAM message (libvirt's VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX is 262120). */
const STREAM_CHUNK = 256 * 1024 - 1024;
/** Bytes of replies and events a client may leave unread before an event cuts it off. */
const EVENT_BACKLOG = 4 * 1024 * 1024;

export interface ConnectionOptions {
  readonly id: number;
  readonly socket: Socket;
  readonly roSocket: boolean;
  /** Given for a TLS client (its certificate's DN); socket clients' comes from SO_PEERCRED. */
  readonly identity?: Identity;
  readonly services: ServerServices;
  readonly table: ReadonlyMap<number, Procedure>;
  /** Brings the store in line with reality before a call that reads or changes guest state. */
  readonly reconcile: () => Promise<void>;
  readonly log: (line: string) => void;
  readonly debug: boolean;
  /** Frame size and per-client caps of this client's socket. */
  readonly limits: ClientLimits;
  /** The budget this client's request bytes are held against (the read-only one for PATH-ro). */
  readonly budget: ByteBudget;
  readonly onClose: (c: RemoteConnection) => void;
  /** Told of every call while it runs, so a server shutting down can let it finish. */
  readonly track: (call: Promise<void>) => void;
}

/** The fd under a net.Socket (libuv's handle), for SO_PEERCRED. */
export function socketFd(socket: Socket): number | undefined {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } })._handle;
  return typeof handle?.fd === 'number' && handle.fd >= 0 ? handle.fd : undefined;
}

function readPeer(socket: Socket, log: (line: string) => void): PeerCred | undefined {
  const fd = socketFd(socket);
  if (fd === undefined) return undefined;
  try {
    return peerCred(fd);
  } catch (err) {
    // Kept as unknown: access control (later) must treat such a client as unauthenticated.
    log(`cannot read peer credentials: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
}

export class RemoteConnection {
  readonly session: ClientSession;
  private readonly o: ConnectionOptions;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private expected: number | undefined;
  private inFlight = 0;
  /** Bytes of the frames of calls running. */
  private inFlightBytes = 0;
  /** Bytes held against the budget: buffered (partial) ones and those of calls running. */
  private held = 0;
  /** When the last whole message arrived or the last call ended (Date.now()). */
  private lastActive = Date.now();
  private ended = false;
  private readonly unknownSeen = new Set<number>();
  /** Open streams by the serial of the call that opened them. */
  private readonly streams = new Map<number, StreamHandler>();
  /**
   * Serials of streams that ended lately: what the client still sends on them is dropped, as
   * libvirtd does. A STREAM message on any other serial is a protocol error.
   */
  private readonly closedStreams: number[] = [];
  /** Stream frames of calls that have not replied yet: a stream's data goes after its call's reply. */
  private readonly beforeReply = new Map<number, Buffer[]>();
  private readonly closeHooks: (() => void)[] = [];
  private readonly label: string;
  /** Every write to the client goes through it (fds passed with a reply keep their place). */
  private readonly out: ReplyWriter;
  /** fds a running call will send with its reply, by serial. */
  private readonly replyFds = new Map<number, readonly number[]>();

  constructor(o: ConnectionOptions) {
    this.o = o;
    const peer = o.identity ? undefined : readPeer(o.socket, o.log);
    this.out = new ReplyWriter(
      o.socket,
      localUnixFd(o.socket, socketFd(o.socket)),
      (why) => this.fail(why, 'refused'),
      () => this.resume(),
    );
    const identity = o.identity ?? o.services.access.identify(socketFd(o.socket), peer, o.roSocket);
    const canSee = o.services.access.canSee(identity);
    this.session = {
      id: o.id,
      peer,
      identity,
      canSee,
      roSocket: o.roSocket,
      opened: false,
      readonly: o.roSocket,
      closeCallback: false,
      closing: false,
      sink: {
        id: o.id,
        send: (proc, body) => this.sendMessage(proc, body),
        // Events of a guest the client may not see (domain:getattr) are not sent to it.
        maySee: (uuid) => canSee({ name: '', uuid }),
      },
      openStream: (serial, proc, make) => this.openStream(serial, proc, make),
      canPassFds: this.out.canPassFds,
      replyFds: (serial, fds) => this.replyFds.set(serial, fds),
      onClose: (fn) => this.closeHooks.push(fn),
    };
    const who = o.identity ? ` (${describeIdentity(o.identity)})` : peer ? ` (pid ${peer.pid} uid ${peer.uid})` : '';
    this.label = `client ${o.id}${who}${o.roSocket ? ' [ro]' : ''}`;
    if (o.debug) o.log(`${this.label}: connected`);
    o.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    o.socket.on('error', (err) => {
      if (o.debug) o.log(`${this.label}: socket error: ${err.message}`);
    });
    o.socket.on('close', () => {
      this.ended = true;
      this.out.close(); // fds of calls still running are closed when they reply
      this.release();
      o.services.events?.drop(this.session.sink);
      for (const st of this.streams.values()) st.abort();
      this.streams.clear();
      for (const fn of this.closeHooks.splice(0)) fn();
      if (o.debug) o.log(`${this.label}: disconnected`);
      o.onClose(this);
    });
    // Replies the client did not read were holding its requests back: read again once they are out.
    o.socket.on('drain', () => this.resume());
  }

  /** Ends the client now (server shutdown). */
  destroy(): void {
    this.ended = true;
    this.release();
    this.o.socket.destroy();
  }

  /** How long this client has sent no message while no call of it ran (ms). */
  idleFor(now: number): number {
    return this.inFlight > 0 ? 0 : now - this.lastActive;
  }

  /** Closes a client that stayed silent past the idle timeout. */
  expire(idleMs: number): void {
    if (this.ended) return;
    this.o.log(`${this.label}: no message for ${Math.round(idleMs / 1000)} s; closing the connection`);
    this.end();
  }

  /** Gives back every byte this client holds (buffered and running), once it is gone. */
  private release(): void {
    this.chunks = [];
    this.buffered = 0;
    this.o.budget.give(this.held);
    this.held = 0;
  }

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    if (!this.o.budget.tryTake(chunk.length)) {
      return this.fail(
        `the server holds ${formatBytes(this.o.budget.used)} of requests of ${this.o.roSocket ? 'read-only ' : ''}clients, its limit is ${formatBytes(this.o.budget.limit)}`,
        'refused',
      );
    }
    this.held += chunk.length;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    this.drain();
  }

  /** No further frame is handled while the client has too much running or unread. */
  private blocked(): boolean {
    return (
      this.inFlight >= MAX_IN_FLIGHT ||
      this.inFlightBytes >= this.o.limits.inFlightBytesMax ||
      this.out.pending > this.o.limits.outputBytesMax
    );
  }

  /** Reads again (and handles what arrived) once nothing holds the client back. */
  private resume(): void {
    if (this.ended || !this.o.socket.isPaused() || this.blocked()) return;
    this.o.socket.resume();
    this.drain();
  }

  /** Handles every whole frame buffered until the client is blocked (then reading pauses). */
  private drain(): void {
    while (!this.ended) {
      if (this.blocked()) {
        this.o.socket.pause();
        return;
      }
      if (this.expected === undefined) {
        if (this.buffered < LEN_SIZE) return;
        const len = this.peekLength();
        const max = LEN_SIZE + this.o.limits.frameMax;
        if (len < LEN_SIZE + HEADER_SIZE || len > max) {
          const ro = this.o.roSocket ? ` (the read-only socket takes frames up to ${formatBytes(this.o.limits.frameMax)})` : '';
          return this.fail(`message length ${len} is outside ${LEN_SIZE + HEADER_SIZE}..${max}${ro}`);
        }
        this.expected = len;
      }
      if (this.buffered < this.expected) return;
      const frame = this.take(this.expected);
      this.expected = undefined;
      this.lastActive = Date.now();
      let running = false;
      try {
        running = this.onFrame(frame);
      } catch (err) {
        // A bug in a decoder must not take the server down: this client ends, the others go on.
        this.fail(`internal error handling a message: ${err instanceof Error ? err.message : String(err)}`);
      }
      // A frame answered at once is let go now; a call's frame is held until its reply.
      if (!running) this.letGo(frame.length);
    }
  }

  private letGo(n: number): void {
    if (this.ended) return; // release() gave everything back
    this.held -= n;
    this.o.budget.give(n);
  }

  private peekLength(): number {
    const first = this.chunks[0] as Buffer;
    const head = first.length >= LEN_SIZE ? first : Buffer.concat(this.chunks).subarray(0, LEN_SIZE);
    return head.readUInt32BE(0);
  }

  /** Removes `n` bytes from the front of the buffered chunks (concatenating only once a frame is whole). */
  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.buffered);
    const frame = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return frame;
  }

  /** Handles one frame; true when it became a running call (which holds the frame's bytes until it replies). */
  private onFrame(frame: Buffer): boolean {
    const r = new XdrReader(frame, LEN_SIZE);
    let h: MessageHeader;
    try {
      h = readHeader(r);
    } catch (err) {
      this.fail(err instanceof Error ? err.message : String(err));
      return false;
    }
    if (h.prog === KEEPALIVE_PROGRAM) {
      this.onKeepalive(h, r);
      return false;
    }
    const key = tableKey(h.prog, h.proc, REMOTE_PROGRAM);
    if ((h.prog !== REMOTE_PROGRAM && h.prog !== QEMU_PROGRAM) || h.vers !== REMOTE_PROTOCOL_VERSION) {
      this.failWithReply(h, new RemoteError(VirErr.RPC, VirFrom.RPC, `cannot find program ${h.prog} version ${h.vers}`));
      return false;
    }
    if (h.type === MessageType.STREAM && (this.streams.has(h.serial) || this.closedStreams.includes(h.serial))) {
      this.onStream(h, frame.subarray(r.offset));
      return false;
    }
    if (h.type === MessageType.CALL_WITH_FDS) {
      // Its fds follow as bytes on the stream, which Node's reads drop (the kernel closes them):
      // nothing after this call could be framed, so the client ends.
      this.failWithReply(
        h,
        new RemoteError(
          VirErr.ARGUMENT_UNSUPPORTED,
          VirFrom.RPC,
          'svirt takes no file descriptors from clients (a call with fds)',
        ),
      );
      return false;
    }
    if (h.type !== MessageType.CALL || h.status !== MessageStatus.OK) {
      this.failWithReply(
        h,
        new RemoteError(VirErr.RPC, VirFrom.RPC, `unexpected message type ${h.type} status ${h.status} (only calls are served)`),
      );
      return false;
    }
    const proc = key === undefined ? undefined : this.o.table.get(key);
    if (!proc) {
      // Logged once per number and client: it tells what a client needs, without letting it flood the log.
      if (this.unknownSeen.size < 32 && !this.unknownSeen.has(h.proc)) {
        this.unknownSeen.add(h.proc);
        this.o.log(`${this.label}: unknown procedure ${h.proc} (serial ${h.serial})`);
      }
      this.reply(h, undefined, new RemoteError(VirErr.NO_SUPPORT, VirFrom.RPC, `unknown procedure: ${h.proc}`));
      return false;
    }
    if (!this.session.opened && !proc.beforeOpen) {
      this.reply(h, undefined, new RemoteError(VirErr.INTERNAL_ERROR, VirFrom.RPC, 'connection not open'));
      return false;
    }
    if (this.session.readonly && proc.writes) {
      this.reply(h, undefined, new RemoteError(VirErr.OPERATION_DENIED, VirFrom.NONE, `read only access prevents ${proc.api}`));
      return false;
    }
    let args: unknown;
    try {
      args = proc.decode(r);
      r.done();
    } catch (err) {
      const why = err instanceof XdrError || err instanceof RangeError ? err.message : String(err);
      this.failWithReply(h, new RemoteError(VirErr.RPC, VirFrom.RPC, `cannot decode the arguments of ${proc.name}: ${why}`));
      return false;
    }
    this.o.track(this.call(h, proc, args, frame.length));
    return true;
  }

  /** Runs a call; its frame's `bytes` stay held (and counted against this client) until it has replied. */
  private async call(h: MessageHeader, proc: Procedure, args: unknown, bytes: number): Promise<void> {
    const started = performance.now();
    this.inFlight++;
    this.inFlightBytes += bytes;
    const body = new XdrWriter();
    let failure: unknown;
    try {
      if (proc.reconcile) await this.o.reconcile();
      await this.o.services.access.run(this.session.identity, proc.name, args, () =>
        Promise.resolve(proc.run({ server: this.o.services, client: this.session, serial: h.serial }, args, body)),
      );
    } catch (err) {
      failure = err;
    }
    // A changing call answers once what it wrote is on disk (store/wal-sync.ts), failed or not:
    // a call that failed may have written its audit row, or part of a repair.
    if (proc.writes) {
      try {
        await this.o.services.hv.store.makeDurable();
      } catch (err) {
        failure ??= err;
      }
    }
    this.inFlight--;
    this.inFlightBytes -= bytes;
    this.lastActive = Date.now();
    if (this.o.debug) {
      const outcome = failure === undefined ? 'ok' : `error: ${toWireError(failure).message}`;
      this.o.log(`${this.label}: ${proc.name} (serial ${h.serial}) ${outcome} in ${(performance.now() - started).toFixed(1)} ms`);
    }
    this.reply(h, failure === undefined ? body : undefined, failure);
    // After the reply, as libvirtd: the caller learns of its own change before the event.
    if (proc.writes) this.o.services.events?.changed({ what: proc.name });
    this.letGo(bytes);
    if (this.session.closing && this.inFlight === 0) return this.end();
    this.resume(); // frames that arrived while the client had too much running
  }

  /** Sends the reply of call `h`: the body, or `failure` as a remote_error. */
  private reply(h: MessageHeader, body: XdrWriter | undefined, failure?: unknown): void {
    const fds = this.replyFds.get(h.serial);
    this.replyFds.delete(h.serial);
    if (this.ended) return fds && this.out.discard(fds);
    const w = new XdrWriter(64 + (body?.length ?? 0));
    const status = failure === undefined ? MessageStatus.OK : MessageStatus.ERROR;
    // A call that failed sends no fds (they are closed); one that has fds announces their count.
    const withFds = fds !== undefined && failure === undefined && body !== undefined;
    const type = withFds ? MessageType.REPLY_WITH_FDS : MessageType.REPLY;
    beginFrame(w, { prog: h.prog, vers: h.vers, proc: h.proc, type, serial: h.serial, status });
    let frame: Buffer;
    try {
      if (withFds) w.uint(fds.length);
      if (failure === undefined && body) w.raw(body.toBuffer());
      else writeError(w, toWireError(failure));
      frame = endFrame(w);
    } catch (err) {
      // A reply too big for the protocol (or a value out of XDR range) becomes an error reply.
      const e = new XdrWriter(256);
      beginFrame(e, {
        prog: h.prog,
        vers: h.vers,
        proc: h.proc,
        type: MessageType.REPLY,
        serial: h.serial,
        status: MessageStatus.ERROR,
      });
      writeError(e, toWireError(err));
      frame = endFrame(e);
      if (fds) this.out.discard(fds);
      return this.out.write(frame);
    }
    if (withFds) this.out.writeWithFds(frame, fds);
    else {
      if (fds) this.out.discard(fds);
      this.out.write(frame);
    }
    const held = this.beforeReply.get(h.serial);
    if (held) {
      this.beforeReply.delete(h.serial);
      for (const f of held) this.out.write(f);
    }
  }

  /** The client's side of an open stream: data, its finish (acknowledged), or its abort. */
  private onStream(h: MessageHeader, body: Buffer): void {
    const st = this.streams.get(h.serial);
    if (!st) {
      // A stream that ended here (a download's end): the client's finish is answered, as libvirtd does; the rest is dropped.
      if (h.status === MessageStatus.OK) this.streamFrame(h.proc, h.serial, MessageStatus.OK);
      return;
    }
    if (h.status === MessageStatus.CONTINUE) return st.data(Buffer.from(body));
    this.endStream(h.serial);
    if (h.status === MessageStatus.OK) {
      st.finish();
      this.streamFrame(h.proc, h.serial, MessageStatus.OK);
    } else {
      st.abort();
    }
  }

  private openStream(serial: number, proc: number, make: (out: StreamOut) => StreamHandler): void {
    if (this.streams.size >= MAX_STREAMS) {
      throw new RemoteError(VirErr.OPERATION_FAILED, VirFrom.STREAMS, `at most ${MAX_STREAMS} streams per connection`);
    }
    const out: StreamOut = {
      data: (buf) => {
        // No data: the end of what the server sends (libvirt's EOF); the client's finish is answered later.
        if (buf.length === 0) this.streamFrame(proc, serial, MessageStatus.CONTINUE, buf);
        for (let off = 0; off < buf.length; off += STREAM_CHUNK) {
          this.streamFrame(proc, serial, MessageStatus.CONTINUE, buf.subarray(off, off + STREAM_CHUNK));
        }
      },
      end: () => {
        if (this.endStream(serial)) this.streamFrame(proc, serial, MessageStatus.OK);
      },
      eof: () => {
        if (this.streams.has(serial)) this.streamFrame(proc, serial, MessageStatus.CONTINUE);
      },
      error: (err) => {
        if (!this.endStream(serial)) return;
        const w = new XdrWriter(256);
        writeError(w, toWireError(err));
        this.streamFrame(proc, serial, MessageStatus.ERROR, w.toBuffer());
      },
      get backlog() {
        return socketBacklog();
      },
    };
    const socketBacklog = (): number => this.out.pending;
    this.beforeReply.set(serial, []);
    this.streams.set(serial, make(out));
  }

  /** Forgets an open stream, remembering its serial for a while; false when it was not open. */
  private endStream(serial: number): boolean {
    if (!this.streams.delete(serial)) return false;
    this.closedStreams.push(serial);
    if (this.closedStreams.length > 16) this.closedStreams.shift();
    return true;
  }

  private streamFrame(proc: number, serial: number, status: MessageStatus, body?: Buffer): void {
    if (this.ended) return;
    const w = new XdrWriter(64 + (body?.length ?? 0));
    beginFrame(w, { prog: REMOTE_PROGRAM, vers: REMOTE_PROTOCOL_VERSION, proc, type: MessageType.STREAM, serial, status });
    if (body) w.raw(body);
    const held = this.beforeReply.get(serial);
    if (held) held.push(endFrame(w));
    else this.out.write(endFrame(w));
  }

  /**
   * An event (a MESSAGE of the remote program). A client that does not read its events is
   * cut once EVENT_BACKLOG bytes wait for it: the server never holds more for it than that.
   */
  private sendMessage(proc: number, body: XdrWriter): void {
    if (this.ended) return;
    if (this.out.pending > EVENT_BACKLOG) {
      this.o.log(`${this.label}: ${formatBytes(this.out.pending)} of events unread; closing the connection`);
      return this.end();
    }
    const w = new XdrWriter(64 + body.length);
    beginFrame(w, {
      prog: REMOTE_PROGRAM,
      vers: REMOTE_PROTOCOL_VERSION,
      proc,
      type: MessageType.MESSAGE,
      serial: 1,
      status: MessageStatus.OK,
    });
    w.raw(body.toBuffer());
    this.out.write(endFrame(w));
  }

  private onKeepalive(h: MessageHeader, r: XdrReader): void {
    if (h.vers !== KEEPALIVE_PROTOCOL_VERSION || h.type !== MessageType.MESSAGE || r.remaining !== 0) {
      return this.fail(`malformed keepalive message (version ${h.vers}, type ${h.type}, ${r.remaining} body bytes)`);
    }
    if (h.proc === KEEPALIVE_PROC_PING) {
      const w = new XdrWriter(32);
      beginFrame(w, {
        prog: KEEPALIVE_PROGRAM,
        vers: KEEPALIVE_PROTOCOL_VERSION,
        proc: KEEPALIVE_PROC_PONG,
        type: MessageType.MESSAGE,
        serial: 0,
        status: MessageStatus.OK,
      });
      if (!this.ended) this.out.write(endFrame(w));
    } else if (h.proc !== KEEPALIVE_PROC_PONG) {
      this.fail(`unknown keepalive procedure ${h.proc}`);
    }
  }

  /** A message with a usable header that must still end the client: reply with the error, then close. */
  private failWithReply(h: MessageHeader, err: RemoteError): void {
    const what = h.prog === REMOTE_PROGRAM ? procName(h.proc) : `program ${h.prog} procedure ${h.proc}`;
    this.o.log(`${this.label}: ${what} (serial ${h.serial}): ${err.message}; closing the connection`);
    this.reply(h, undefined, err);
    this.end();
  }

  private fail(reason: string, kind: 'malformed message' | 'refused' = 'malformed message'): void {
    this.o.log(`${this.label}: ${kind}: ${reason}; closing the connection`);
    this.end();
  }

  /** Stops reading, flushes what was written, and closes; a client that does not close its end is cut after 2 s. */
  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.release();
    // Nothing more is read: what such a client goes on sending would only be allocated to be dropped.
    this.o.socket.pause();
    this.out.end();
    setTimeout(() => this.o.socket.destroy(), 2000).unref();
  }
}
