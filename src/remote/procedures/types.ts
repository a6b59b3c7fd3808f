import type { Identity } from '../../access/identity.js';
import type { RemoteGate } from '../../access/remote-gate.js';
import type { PeerCred } from '../../host/native.js';
import type { Hypervisor } from '../../lifecycle/hypervisor.js';
import type { DomainEventHub, EventSink } from '../events.js';
import type { ProcName } from '../protocol.js';
import type { XdrReader, XdrWriter } from '../xdr.js';

/** What a procedure may know and change about the client that called it. */
export interface ClientSession {
  readonly id: number;
  /** SO_PEERCRED of the client, kept for access control; undefined if the kernel would not say. */
  readonly peer: PeerCred | undefined;
  /** Who the client is for access control (src/access/remote-gate.ts). */
  readonly identity: Identity;
  /** Whether it may see a guest (domain:getattr): listing and lookups skip the others. */
  readonly canSee: (d: { name: string; uuid: string }) => boolean;
  /** The socket is the read-only twin. */
  readonly roSocket: boolean;
  /** ConnectOpen succeeded and ConnectClose has not been called. */
  opened: boolean;
  /** Read-only: from the socket, or VIR_CONNECT_RO asked at open. */
  readonly: boolean;
  closeCallback: boolean;
  /** Set by ConnectClose: the connection ends once the reply is written. */
  closing: boolean;
  /** Where this client's events go (src/remote/events.ts). */
  readonly sink: EventSink;
  /**
   * Opens a stream on the call with this serial (libvirt's STREAM messages, as DomainOpenConsole
   * uses them): `make` gets the client's end and returns what handles the client's data.
   */
  openStream(serial: number, proc: number, make: (out: StreamOut) => StreamHandler): void;
  /** The connection is a local UNIX socket: fds can be passed to the client (SCM_RIGHTS). */
  readonly canPassFds: boolean;
  /**
   * Sends `fds` with the reply of call `serial` (REPLY_WITH_FDS). The connection owns them from
   * now on: it closes them once sent, or when the call fails or the client goes.
   */
  replyFds(serial: number, fds: readonly number[]): void;
  /** Runs `fn` once the client is gone (an incoming migration it prepared and never finished goes). */
  onClose(fn: () => void): void;
}

/** The server's end of a stream: data to the client, its end, or an error that ends it. */
export interface StreamOut {
  data(buf: Buffer): void;
  end(): void;
  /** The end of a download (an empty data message, as libvirtd sends); the client's finish then ends the stream. */
  eof(): void;
  error(err: unknown): void;
  /** Bytes written to the client and not yet taken by it. */
  readonly backlog: number;
}

/** What a stream does with the client's side: its data, its finish, its abort (or the client gone). */
export interface StreamHandler {
  data(buf: Buffer): void;
  finish(): void;
  abort(): void;
}

/** Per-server services every procedure shares. */
export interface ServerServices {
  readonly hv: Hypervisor;
  /** The URI a client gets from ConnectGetURI. */
  readonly uri: string;
  /** Access rules, permissions and the audit trail. */
  readonly access: RemoteGate;
  /** QEMU's version (libvirt encoding), probed once. */
  qemuVersion(): Promise<number>;
  /** Lifecycle events for registered clients (absent in servers that send none). */
  readonly events?: DomainEventHub;
}

export interface CallContext {
  readonly server: ServerServices;
  readonly client: ClientSession;
  /** The call's serial (a stream opened by it carries the same). */
  readonly serial: number;
}

/**
 * One procedure of the remote program. Arguments are decoded (and checked to be complete)
 * before `run` does anything, so a malformed call changes nothing.
 */
export interface Procedure {
  readonly name: ProcName;
  /** The public API it serves, named in read-only refusals (`virDomainCreate`). */
  readonly api: string;
  /** Changes state: refused on a read-only connection. */
  readonly writes: boolean;
  /** Allowed before ConnectOpen (the auth and feature negotiation). */
  readonly beforeOpen: boolean;
  /** Reads or changes guest state: the server reconciles first, as every CLI verb does. */
  readonly reconcile: boolean;
  readonly decode: (r: XdrReader) => unknown;
  readonly run: (ctx: CallContext, args: unknown, ret: XdrWriter) => Promise<void> | void;
}

export interface ProcedureSpec<A> {
  readonly api: string;
  readonly writes?: boolean;
  readonly beforeOpen?: boolean;
  readonly reconcile?: boolean;
  readonly decode?: (r: XdrReader) => A;
  readonly run: (ctx: CallContext, args: A, ret: XdrWriter) => Promise<void> | void;
}

/** A typed procedure; the table stores it with its argument type erased. */
export function procedure<A = void>(name: ProcName, spec: ProcedureSpec<A>): Procedure {
  const decode = spec.decode;
  return {
    name,
    api: spec.api,
    writes: spec.writes ?? false,
    beforeOpen: spec.beforeOpen ?? false,
    reconcile: spec.reconcile ?? false,
    decode: decode ? (r) => decode(r) : () => undefined,
    // The dispatcher hands back exactly what `decode` produced, so the cast restores its type.
    run: (ctx, args, ret) => spec.run(ctx, args as A, ret),
  };
}
