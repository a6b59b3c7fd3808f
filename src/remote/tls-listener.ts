/**
 * `svirt serve --listen tls`: libvirt's remote protocol over TLS on TCP (`qemu+tls://`, port
 * 16514), as libvirtd's listen_tls. Every client is hostile until its certificate is verified:
 *
 * - a handshake must finish within `handshakeTimeoutMs` (a client that connects and says
 *   nothing, or stops half way, is cut);
 * - at most `maxPending` handshakes are held; a newcomer past that evicts the oldest, so a
 *   crowd of silent connections cannot keep a real client out (its handshake takes ms);
 * - past the server's client cap a connection is closed at accept;
 * - a client certificate is required and verified against the CA (libvirtd's
 *   tls_no_verify_certificate=0) unless `verifyClient` is off; it must be within its validity,
 *   not a CA, and allowed as a TLS client;
 * - its subject DN must be named by an access rule (`tls_dns`, libvirt's tls_allowed_dn_list),
 *   else the connection is closed before a byte of RPC (virsh: "server verification (of our
 *   certificate or IP address) failed"), the refusal in the audit trail.
 *
 * A client that passes gets libvirt's confirmation byte (1) and is served like a socket client,
 * with the certificate's DN as its identity (access rules, audit trail).
 */
import type { Socket } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { tlsIdentity, type Identity } from '../access/identity.js';
import { certProblem, subjectDn, type TlsCreds } from './tls-creds.js';

export interface TlsListenOptions {
  readonly host: string;
  readonly port: number;
  readonly creds: TlsCreds;
  /** Require and verify a client certificate (default in serve: yes). */
  readonly verifyClient: boolean;
  readonly handshakeTimeoutMs: number;
  readonly maxPending: number;
  /** Whether the server takes another client now (its client cap). */
  readonly hasRoom: () => boolean;
  /** The access rules' word on a verified client (RemoteGate.admitTls). */
  readonly admit: (id: Identity) => { allowed: boolean; why: string };
  /** A client that passed: served from here on. */
  readonly serve: (socket: TLSSocket, id: Identity) => void;
  readonly log: (line: string) => void;
  readonly debug: boolean;
}

export const TLS_PORT = 16514;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_PENDING = 64;

/** Why connections were closed before they were served, counted between log lines. */
interface Refusals {
  handshake: number;
  evicted: number;
  full: number;
  certificate: number;
  rules: number;
  loggedAt: number;
}

export class TlsListener {
  private readonly o: TlsListenOptions;
  private readonly server: Server;
  /** Raw sockets whose handshake has not finished, oldest first (Map keeps insertion order). */
  private readonly pending = new Map<Socket, number>();
  private readonly refused: Refusals = { handshake: 0, evicted: 0, full: 0, certificate: 0, rules: 0, loggedAt: 0 };
  private boundPort = 0;

  private constructor(o: TlsListenOptions) {
    this.o = o;
    this.server = createServer({
      ca: o.creds.ca,
      cert: o.creds.cert,
      key: o.creds.key,
      ...(o.creds.crl === undefined ? {} : { crl: o.creds.crl }),
      requestCert: true,
      rejectUnauthorized: o.verifyClient,
      handshakeTimeout: o.handshakeTimeoutMs,
      minVersion: 'TLSv1.2',
    });
    this.server.on('connection', (raw: Socket) => this.onConnection(raw));
    this.server.on('secureConnection', (s: TLSSocket) => this.onSecure(s));
    this.server.on('tlsClientError', (err: Error, s: TLSSocket) => {
      this.refuse('handshake', `${addressOf(s)}: TLS handshake failed: ${err.message}`);
      s.destroy();
    });
    this.server.on('error', (err) => o.log(`TLS listener: ${err.message}`));
  }

  static async open(o: TlsListenOptions): Promise<TlsListener> {
    const l = new TlsListener(o);
    await new Promise<void>((resolve, reject) => {
      l.server.once('error', reject);
      l.server.listen({ host: o.host, port: o.port, backlog: 128 }, () => {
        l.server.off('error', reject);
        resolve();
      });
    });
    const a = l.server.address();
    l.boundPort = typeof a === 'object' && a !== null ? a.port : o.port;
    return l;
  }

  get port(): number {
    return this.boundPort;
  }

  /** Handshakes under way right now. */
  get handshakes(): number {
    return this.pending.size;
  }

  private onConnection(raw: Socket): void {
    if (!this.o.hasRoom()) {
      raw.destroy();
      this.refuse('full', undefined);
      return;
    }
    if (this.pending.size >= this.o.maxPending) {
      const [oldest] = this.pending.keys();
      if (oldest) {
        this.pending.delete(oldest);
        oldest.destroy();
        this.refuse('evicted', undefined);
      }
    }
    this.pending.set(raw, Date.now());
    raw.once('close', () => this.pending.delete(raw));
  }

  private onSecure(s: TLSSocket): void {
    const parent = (s as unknown as { _parent?: Socket })._parent;
    if (parent) this.pending.delete(parent);
    // Nothing of the client is read until it is admitted.
    s.pause();
    const remote = addressOf(s);
    const cert = s.getPeerX509Certificate();
    let dn: string | undefined;
    if (s.authorized && cert !== undefined) {
      const problem = certProblem(cert, 'client');
      if (problem !== undefined) {
        this.refuse('certificate', `${remote}: client certificate ${JSON.stringify(subjectDn(cert))} ${problem}`);
        s.destroy();
        return;
      }
      dn = subjectDn(cert);
    } else if (this.o.verifyClient) {
      // rejectUnauthorized already ends these; fail closed if it ever did not.
      this.refuse('certificate', `${remote}: no verified client certificate`);
      s.destroy();
      return;
    }
    const id = tlsIdentity(dn, remote);
    const d = this.o.admit(id);
    if (!d.allowed) {
      this.refuse('rules', `${remote}: ${d.why}`);
      // A 0 where libvirt's client waits for its confirmation byte: virsh says "server
      // verification (of our certificate or IP address) failed" (libvirtd just closes).
      s.end(Buffer.from([0]));
      setTimeout(() => s.destroy(), 1000).unref();
      return;
    }
    if (this.o.debug) this.o.log(`${remote}: TLS client ${JSON.stringify(dn ?? '')} admitted (${d.why})`);
    // libvirt's confirmation: the client reads one byte, 1, before its first call.
    s.write(Buffer.from([1]));
    this.o.serve(s, id);
    s.resume();
  }

  /** Counts a refusal; logs it at once under --debug, else a summary at most every 10 s. */
  private refuse(kind: Exclude<keyof Refusals, 'loggedAt'>, line: string | undefined): void {
    this.refused[kind]++;
    if (this.o.debug && line) this.o.log(line);
    const now = Date.now();
    if (now - this.refused.loggedAt < 10_000) return;
    const r = this.refused;
    const parts = [
      r.handshake && `${r.handshake} failed or timed-out handshakes`,
      r.evicted && `${r.evicted} evicted pending handshakes (more than ${this.o.maxPending} at once)`,
      r.full && `${r.full} past the client cap`,
      r.certificate && `${r.certificate} with an unusable certificate`,
      r.rules && `${r.rules} whose DN no rule names`,
    ].filter(Boolean);
    this.o.log(`TLS: closed before serving: ${parts.join(', ')}${line && !this.o.debug ? ` (last: ${line})` : ''}`);
    r.handshake = r.evicted = r.full = r.certificate = r.rules = 0;
    r.loggedAt = now;
  }

  async close(): Promise<void> {
    for (const raw of this.pending.keys()) raw.destroy();
    this.pending.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function addressOf(s: Socket): string {
  const a = s.remoteAddress ?? '?';
  return `${a.includes(':') ? `[${a}]` : a}:${s.remotePort ?? '?'}`;
}
