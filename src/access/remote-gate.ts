/**
 * Access control of `svirt serve` (docs/access.md, docs/remote.md): the identity of each
 * client from the kernel at accept (SO_PEERCRED, SO_PEERGROUPS, SO_PEERSEC), admission to the
 * read-write socket at ConnectOpen (root, the server's own user, or a user a rule names), the
 * permission of every procedure before it runs (src/access/remote-table.ts), listing and
 * lookups filtered by `domain:getattr`, and the audit trail of every state change.
 */
import { SvirtError } from '../errors.js';
import { peerGroups, peerSec, type PeerCred } from '../host/native.js';
import type { Store } from '../store/store.js';
import { AccessGuard, guestLabels, privilegedLabels } from './guard.js';
import { callerName, groupsOfPid, type Identity } from './identity.js';
import type { Permission } from './permissions.js';
import { Policy, type GuestFacts } from './policy.js';
import { REMOTE_ACCESS } from './remote-table.js';
import { loadRules } from './rules.js';
import type { ProcName } from '../remote/protocol.js';

interface DomArg {
  readonly name: string;
  readonly uuid: string;
}

function domOf(args: unknown): DomArg | undefined {
  if (typeof args !== 'object' || args === null || !('dom' in args)) return undefined;
  return (args as { dom: DomArg }).dom;
}

function xmlOf(args: unknown): string | undefined {
  if (typeof args === 'string') return args;
  if (typeof args === 'object' && args !== null && 'xml' in args && typeof (args as { xml: unknown }).xml === 'string') {
    return (args as { xml: string }).xml;
  }
  return undefined;
}

function flagsOf(args: unknown): number {
  if (typeof args === 'object' && args !== null && 'flags' in args) {
    const f = (args as { flags: unknown }).flags;
    if (typeof f === 'number') return f;
  }
  return 0;
}

export class RemoteGate {
  readonly guard: AccessGuard;

  private constructor(guard: AccessGuard) {
    this.guard = guard;
  }

  /** The gate of a server on this store: rules from the state dir, the admin is the server's own user. */
  static open(stateDir: string, store: Store): RemoteGate {
    const admin = process.geteuid?.() ?? 0;
    return new RemoteGate(new AccessGuard(new Policy(loadRules(stateDir, admin), admin), store));
  }

  /** Whether some rule may admit another user: only then is the read-write socket opened to all (0666). */
  get admitsOthers(): boolean {
    return (this.guard.policy.rules?.rules ?? []).some((r) => r.tlsDns === undefined);
  }

  /**
   * Whether a TLS client may go past the handshake: some rule names its DN (the rules' tls_dns
   * are libvirt's tls_allowed_dn_list). A refusal is recorded in the audit trail.
   */
  admitTls(id: Identity): { allowed: boolean; why: string } {
    const d = this.guard.policy.admits(id);
    if (!d.allowed) this.guard.record(id, { op: 'TLSHandshake', allowed: false, result: 'denied', why: d.why });
    return d;
  }

  /** The client's identity as the kernel gives it at accept; undefined peer credentials make a nobody. */
  identify(fd: number | undefined, peer: PeerCred | undefined, ro: boolean): Identity {
    const via = ro ? 'socket-ro' : 'socket-rw';
    if (peer === undefined || fd === undefined) return { uid: 0xfffffffe, gid: 0xfffffffe, groups: [], pid: 0, via };
    let groups: readonly number[] | undefined;
    let context: string | undefined;
    try {
      groups = peerGroups(fd);
      context = peerSec(fd);
    } catch {
      /* an older addon or kernel: groups from /proc below */
    }
    if (context !== undefined && (!context.includes(':') || context === 'unlabeled')) context = undefined;
    return { uid: peer.uid, gid: peer.gid, groups: groups ?? groupsOfPid(peer.pid), pid: peer.pid, context, via };
  }

  /** ConnectOpen on the read-write socket: the caller must be admitted (recorded when refused). */
  admitOpen(id: Identity): void {
    if (id.via !== 'socket-rw' && id.via !== 'tls') return;
    const d = this.guard.policy.admits(id);
    if (d.allowed) return;
    this.guard.record(id, { op: 'ConnectOpen', allowed: false, result: 'denied', why: d.why });
    throw new SvirtError(
      'SVIRT_ERR_ACCESS_DENIED',
      `access denied: ${d.why} (${id.via === 'tls' ? 'TLS' : 'read-write socket'})`,
    );
  }

  /** Whether the caller may see a guest (listing, lookups): `domain:getattr`. */
  canSee(id: Identity): (d: { name: string; uuid: string }) => boolean {
    if (this.guard.policy.isAdmin(id)) return () => true;
    return (d) => {
      const facts = this.guard.facts(d.uuid);
      return facts !== undefined && this.guard.policy.decide(id, 'domain:getattr', facts).allowed;
    };
  }

  /** Checks a procedure, runs it, and records the result of a state change (with the labels involved). */
  async run(id: Identity, proc: ProcName, args: unknown, run: () => Promise<void>): Promise<void> {
    const spec = REMOTE_ACCESS[proc];
    if (proc === 'ConnectOpen') this.admitOpen(id);
    if (spec.perms === 'none') return run();
    const guard = this.guard;
    if (spec.perms === 'admin' && !guard.policy.isAdmin(id)) {
      guard.record(id, {
        op: proc,
        permission: 'admin',
        allowed: false,
        result: 'denied',
        why: `${callerName(id)} is not the admin`,
      });
      throw new SvirtError('SVIRT_ERR_ACCESS_DENIED', `access denied: ${proc}: only root or the server's user may do this`);
    }
    const perms: Permission[] = typeof spec.perms === 'string' ? [] : [...spec.perms];
    if (spec.flag && (flagsOf(args) & spec.flag.bit) !== 0) perms.push(spec.flag.perm);
    let guest: GuestFacts | undefined;
    let created: string | undefined;
    if (spec.guest === 'dom') {
      const dom = domOf(args);
      guest = dom ? guard.facts(dom.uuid) : undefined;
      // A guest the caller may not see is "not found", as a lookup says (no probing by uuid).
      if (dom && guest && !guard.policy.isAdmin(id) && !guard.policy.decide(id, 'domain:getattr', guest).allowed) {
        throw new SvirtError('SVIRT_ERR_NO_DOMAIN', `Domain not found: no domain with matching uuid '${dom.uuid}'`);
      }
      if (guest === undefined) return run(); // the procedure says "not found"
      for (const p of perms) guard.check(id, p, guest, proc);
      if (spec.labels === 'label') await this.checkStoredPrivileged(id, guest, proc);
    } else if (spec.guest === 'xml') {
      const xml = xmlOf(args);
      const { parseDomainXml } = await import('../domain/index.js');
      let def;
      try {
        def = xml === undefined ? undefined : parseDomainXml(xml);
      } catch {
        return run(); // the procedure reports the XML's own error
      }
      if (def === undefined) return run();
      const existing = guard.exists(def.uuid, def.name);
      guest = existing ?? { name: def.name, uuid: def.uuid, owner: id.uid, labels: [] };
      if (existing === undefined) created = def.uuid;
      for (const p of perms) guard.check(id, p, guest, proc);
      guard.checkPrivileged(id, privilegedLabels(def.seclabels), guest, proc);
    } else {
      for (const p of perms) guard.check(id, p, undefined, proc);
    }
    if (spec.audit !== true) return run();
    const why = guard.policy.isAdmin(id) ? (id.uid === 0 ? 'root' : 'admin') : 'rule';
    const base = { guest: guest?.name, uuid: guest?.uuid, op: proc, permission: perms.join(',') || 'admin' };
    const before = spec.labels === 'restore-labels' ? guestLabels(guard.store, guest?.uuid) : [];
    // A restore names its guest inside the state file: it is the running guest that was not there before.
    const runningBefore = spec.guest === undefined && spec.labels === 'label' ? guard.store.runningUuids() : undefined;
    try {
      await run();
    } catch (err) {
      guard.record(id, { ...base, allowed: true, result: `error: ${err instanceof Error ? err.message : String(err)}`, why });
      throw err;
    }
    if (created !== undefined) guard.own(id, created);
    if (runningBefore) {
      const uuid = [...guard.store.runningUuids()].find((u) => !runningBefore.has(u));
      guest = uuid === undefined ? undefined : guard.facts(uuid);
      if (guest) Object.assign(base, { guest: guest.name, uuid: guest.uuid });
    }
    guard.record(id, { ...base, allowed: true, result: 'ok', why });
    if (spec.labels === 'label')
      guard.record(id, { ...base, op: 'label', labels: guestLabels(guard.store, guest?.uuid), allowed: true, result: 'ok' });
    if (spec.labels === 'restore-labels' && before.length > 0) {
      guard.record(id, { ...base, op: 'restore-labels', labels: before, allowed: true, result: 'ok' });
    }
  }

  /** Starting a stored definition with a privileged static label needs its own permission too. */
  private async checkStoredPrivileged(id: Identity, guest: GuestFacts, op: string): Promise<void> {
    const def = guest.uuid ? this.guard.store.getDefinedByUuid(guest.uuid) : undefined;
    if (!def) return;
    const { parseDomainXml } = await import('../domain/index.js');
    let reasons: string[];
    try {
      reasons = privilegedLabels(parseDomainXml(def.xml).seclabels);
    } catch {
      return;
    }
    this.guard.checkPrivileged(id, reasons, guest, op);
  }
}
