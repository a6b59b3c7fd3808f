/**
 * What one `svirt serve` gives its clients at most, so that no client (and no crowd of local
 * users on the 0666 read-only socket) can take the memory or the fds root needs: clients in
 * total and read-only ones apart (libvirt's max_clients / max_anonymous_clients), bytes of
 * requests held per client and in all, the largest frame per socket, and how long a client
 * may stay connected without sending a message.
 */
import { MESSAGE_MAX } from './protocol.js';

export interface ServeLimits {
  /** Clients connected at once, both sockets (libvirt's max_clients). */
  readonly maxClients: number;
  /** Of those, on the read-only socket: the rest of maxClients is root's alone. */
  readonly maxReadonlyClients: number;
  /** Bytes of requests (partial frames and frames of calls running) held for all clients. */
  readonly maxBufferedBytes: number;
  /** Of those, for read-only clients: the rest of maxBufferedBytes is root's alone. */
  readonly maxReadonlyBufferedBytes: number;
  /** Largest frame a read-only client may send (its procedures take a name or a uuid). */
  readonly readonlyFrameMax: number;
  /** A client sending no message (no call, no keepalive) for this long is closed; 0: never. */
  readonly idleTimeoutMs: number;
}

/** Largest frame on the read-write socket: libvirt's own limit. */
export const FRAME_MAX = MESSAGE_MAX;

export const DEFAULT_LIMITS: ServeLimits = {
  maxClients: 5000,
  maxReadonlyClients: 128,
  maxBufferedBytes: 256 * 1024 * 1024,
  maxReadonlyBufferedBytes: 16 * 1024 * 1024,
  readonlyFrameMax: 1024 * 1024,
  idleTimeoutMs: 120_000,
};

/** Per-client caps that follow from the socket. */
export interface ClientLimits {
  /** A frame declaring more than this closes the client at once. */
  readonly frameMax: number;
  /** Bytes of running calls' frames past which no further frame is read from this client. */
  readonly inFlightBytesMax: number;
  /** Bytes of replies queued for the client past which its requests are no longer read. */
  readonly outputBytesMax: number;
}

export function clientLimits(limits: ServeLimits, readonly: boolean): ClientLimits {
  const frameMax = readonly ? limits.readonlyFrameMax : FRAME_MAX;
  return { frameMax, inFlightBytesMax: 2 * frameMax, outputBytesMax: 2 * frameMax };
}

/** fds kept out of the client budget: guests' images, logs, QMP sockets, helpers' pipes. */
export const FD_RESERVE = 256;

/**
 * Limits that fit an open-file limit: every client is an fd, and FD_RESERVE stay for the
 * work the clients ask for. Read-only clients keep at most half of what is left.
 */
export function fitToFds(limits: ServeLimits, nofile: number): ServeLimits {
  const room = Math.max(2, nofile - FD_RESERVE);
  const maxClients = Math.min(limits.maxClients, room);
  return {
    ...limits,
    maxClients,
    maxReadonlyClients: Math.min(limits.maxReadonlyClients, Math.floor(maxClients / 2)),
  };
}

/** The open-file limit these limits need (clients + the reserve), as libvirtd's unit asks for 8192. */
export function fdsNeeded(limits: ServeLimits): number {
  return Math.max(8192, limits.maxClients + FD_RESERVE);
}

/** Checks limits given by an operator; the error says which one is wrong. */
export function limitsProblem(l: ServeLimits): string | undefined {
  for (const [name, v] of Object.entries(l)) {
    if (!Number.isSafeInteger(v) || v < 0) return `${name} must be a whole number >= 0, got ${v}`;
  }
  if (l.maxClients < 1) return 'maxClients must be at least 1';
  if (l.maxReadonlyClients >= l.maxClients) return 'maxReadonlyClients must be below maxClients (root needs the rest)';
  if (l.maxReadonlyBufferedBytes >= l.maxBufferedBytes) return 'maxReadonlyBufferedBytes must be below maxBufferedBytes';
  if (l.readonlyFrameMax > l.maxReadonlyBufferedBytes) return 'readonlyFrameMax must fit in maxReadonlyBufferedBytes';
  return undefined;
}

/**
 * A count of bytes held against a limit; a child budget (read-only clients) also takes from
 * its parent (all clients), so both limits hold.
 */
export class ByteBudget {
  readonly limit: number;
  private readonly parent: ByteBudget | undefined;
  private usedBytes = 0;

  constructor(limit: number, parent?: ByteBudget) {
    this.limit = limit;
    this.parent = parent;
  }

  get used(): number {
    return this.usedBytes;
  }

  /** Takes `n` bytes if this budget and its parent both have room; false (nothing taken) otherwise. */
  tryTake(n: number): boolean {
    if (this.usedBytes + n > this.limit) return false;
    if (this.parent && !this.parent.tryTake(n)) return false;
    this.usedBytes += n;
    return true;
  }

  give(n: number): void {
    this.usedBytes -= n;
    this.parent?.give(n);
  }
}
