/**
 * The access guard of one store: decides (src/access/policy.ts), records every decision of a
 * management operation in the audit trail, and raises the one denial error,
 * `SVIRT_ERR_ACCESS_DENIED` "access denied: …" (libvirt's VIR_ERR_ACCESS_DENIED on the wire).
 * Shared by the CLI (src/access/cli-gate.ts) and `svirt serve` (src/access/remote-gate.ts).
 */
import { SvirtError } from '../errors.js';
import type { Store } from '../store/store.js';
import { appendAudit, ownerOf, setOwner, type AuditEvent } from './audit.js';
import { describeIdentity, type Identity } from './identity.js';
import { sendLinuxAudit, sendResourceAudits } from './linux-audit.js';
import type { Permission } from './permissions.js';
import type { Decision, GuestFacts, Policy } from './policy.js';

/** SELinux types that are not confined: a static label with one grants more than svirt_t. */
const UNCONFINED_TYPES = new Set(['unconfined_t', 'spc_t', 'kernel_t', 'initrc_t', 'unconfined_service_t', 'virtd_t', 'init_t']);

interface SecLabelLike {
  readonly type: string;
  readonly model?: string | undefined;
  readonly label?: string | undefined;
}

/**
 * What in a definition's `<seclabel>`s grants more than a dynamic label would: uid or gid 0
 * (dac), an unconfined SELinux type or AppArmor profile, or `type='none'` (no confinement).
 */
export function privilegedLabels(seclabels: readonly SecLabelLike[]): string[] {
  const out: string[] = [];
  for (const s of seclabels) {
    if (s.type === 'none') out.push(`seclabel type='none'${s.model ? ` (${s.model})` : ''}: no confinement`);
    if (s.type !== 'static' || s.label === undefined) continue;
    const l = s.label;
    if (s.model === 'dac' || /^\+?\d+:\+?\d+$/.test(l) || /^[a-z_][a-z0-9_-]*:[a-z_][a-z0-9_-]*$/.test(l)) {
      const [u, g] = l.split(':');
      if (u === '+0' || u === '0' || u === 'root' || g === '+0' || g === '0' || g === 'root')
        out.push(`static dac label ${l} (uid/gid 0)`);
    }
    const t = l.split(':')[2];
    if ((s.model === 'selinux' || s.model === undefined) && t !== undefined && UNCONFINED_TYPES.has(t)) {
      out.push(`static SELinux label ${l} (unconfined type ${t})`);
    }
    if (s.model === 'apparmor' && l === 'unconfined') out.push('static AppArmor profile unconfined');
  }
  return out;
}

/** Labels of a running guest, one per driver (`dac=+1900:+1900`), from its reservations. */
export function guestLabels(store: Store, uuid: string | undefined): string[] {
  if (uuid === undefined) return [];
  return store
    .reservationsOf(uuid)
    .filter((r) => (r.driver as string) !== 'tcp-port')
    .map((r) => `${r.driver}=${r.label}`);
}

function staticLabels(xml: string): string[] {
  // The stored XML is svirt's own formatting; a rule selecting by label only needs the label strings.
  return [...xml.matchAll(/<seclabel\b[^>]*>\s*<label>([^<]*)<\/label>/g)].map((m) => m[1] ?? '');
}

export class AccessGuard {
  readonly policy: Policy;
  readonly store: Store;

  constructor(policy: Policy, store: Store) {
    this.policy = policy;
    this.store = store;
  }

  /** What rules select a stored guest by; undefined when there is no such guest. */
  facts(nameOrUuid: string): GuestFacts | undefined {
    const s = this.store;
    const def = s.getDefinedByName(nameOrUuid) ?? s.getDefinedByUuid(nameOrUuid);
    const run = s.getRunningByName(nameOrUuid) ?? s.getRunning(nameOrUuid);
    const uuid = def?.uuid ?? run?.uuid;
    if (uuid === undefined) return undefined;
    const name = run?.name ?? def?.name ?? nameOrUuid;
    const labels = [
      ...staticLabels(run?.liveXml ?? def?.xml ?? ''),
      ...guestLabels(s, uuid).map((l) => l.replace(/^[a-z]+=/, '')),
    ];
    return { name, uuid, owner: ownerOf(s.db, uuid), labels };
  }

  /** Whether a uuid or name is taken (a definition or a running guest). */
  exists(uuid: string, name: string): GuestFacts | undefined {
    return this.facts(uuid) ?? this.facts(name);
  }

  /** Decides; a denial is recorded and thrown, an allowed call is returned for the caller to record its result. */
  check(id: Identity, perm: Permission, guest: GuestFacts | undefined, op: string): Decision {
    const d = this.policy.decide(id, perm, guest);
    if (!d.allowed) {
      this.record(id, {
        guest: guest?.name,
        uuid: guest?.uuid,
        op,
        permission: perm,
        allowed: false,
        result: 'denied',
        why: d.why,
      });
      throw new SvirtError('SVIRT_ERR_ACCESS_DENIED', `access denied: ${op}: ${d.why}`);
    }
    return d;
  }

  /**
   * The extra permission a definition with privileged static labels needs: root (or the
   * admin) gets a warning in the trail; anyone else needs `domain:static-privileged-label`.
   */
  checkPrivileged(id: Identity, reasons: readonly string[], guest: GuestFacts, op: string): void {
    if (reasons.length === 0) return;
    const perm: Permission = 'domain:static-privileged-label';
    const d = this.check(id, perm, guest, op);
    if (this.policy.isAdmin(id))
      process.stderr.write(`warning: guest '${guest.name}': ${reasons.join('; ')} (recorded in the audit trail)\n`);
    this.record(id, {
      guest: guest.name,
      uuid: guest.uuid,
      op,
      permission: perm,
      allowed: true,
      result: `warning: ${reasons.join('; ')}`,
      why: d.why,
    });
  }

  /** Makes the caller the owner of a guest that is new. */
  own(id: Identity, uuid: string): void {
    // A TLS client has no local account to act as: its guests are root's (the entrypoint rules
    // then bound their files as for root's guests), as libvirtd's TLS clients act for the daemon.
    if (id.via === 'tls') setOwner(this.store.db, uuid, 0, 0);
    else setOwner(this.store.db, uuid, id.uid, id.gid);
  }

  /** Appends one event to the trail (and a Linux audit record where the kernel takes one); never throws. */
  record(id: Identity, e: AuditEvent): void {
    try {
      appendAudit(this.store.db, id, e);
    } catch (err) {
      process.stderr.write(`warning: audit trail: cannot record ${e.op} by ${describeIdentity(id)}: ${(err as Error).message}\n`);
    }
    sendLinuxAudit(id, e);
    const uuid = e.uuid;
    if (e.op === 'label' && uuid !== undefined) sendResourceAudits(id, e, () => this.store.getRunning(uuid)?.resources ?? []);
  }
}
