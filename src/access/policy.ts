/**
 * The decision: may this caller have this permission on this guest? Root (and the state dir's
 * own user, for a non-root state dir) may do everything. Anyone else needs a rule that names
 * them, grants the permission and selects the guest (by default: guests they own). The
 * read-only socket can only ever grant permissions that change nothing; on it, reading
 * (`getattr`, `read`, `search-domains`) stays open to every local user, as before rules.
 */
import { callerName, selinuxType, type Identity } from './identity.js';
import { READ_ONLY_PERMISSIONS, type Permission } from './permissions.js';
import type { Rule, Rules } from './rules.js';

/** What a rule can select a guest by. */
export interface GuestFacts {
  readonly name: string;
  readonly uuid?: string;
  /** uid of whoever defined it (root for guests defined before owners were kept). */
  readonly owner: number;
  /** Every `<seclabel>` label of the definition (static ones) or of the running guest. */
  readonly labels: readonly string[];
}

export interface Decision {
  readonly allowed: boolean;
  /** Why: `root`, `admin`, `rule "NAME" (line N)`, `read-only socket`, or what was missing. */
  readonly why: string;
}

export function glob(pattern: string, s: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    's',
  );
  return re.test(s);
}

/** The rule names this caller (every caller selector it gives matches). */
export function ruleMatchesCaller(rule: Rule, id: Identity): boolean {
  // A TLS client has no local account: only a tls_dns rule names it, and such a rule names nobody else.
  if (id.via === 'tls' || rule.tlsDns) {
    const dn = id.via === 'tls' ? id.tlsDn : undefined;
    return dn !== undefined && rule.tlsDns !== undefined && rule.tlsDns.some((p) => glob(p, dn));
  }
  if (rule.users && !rule.users.some((u) => u === '*' || u === id.uid)) return false;
  if (rule.groups && !rule.groups.some((g) => g === id.gid || id.groups.includes(g))) return false;
  if (rule.selinuxTypes) {
    const t = selinuxType(id.context);
    if (t === undefined || !rule.selinuxTypes.includes(t)) return false;
  }
  return true;
}

function ruleSelectsGuest(rule: Rule, id: Identity, g: GuestFacts): boolean {
  const o = rule.guests.owner;
  // A TLS client owns nothing as "self" (it has no uid; rules.ts makes its rules name an owner).
  if (o === 'self' && id.via === 'tls') return false;
  if (o === 'self' ? g.owner !== id.uid : o !== 'any' && g.owner !== o) return false;
  if (rule.guests.names && !rule.guests.names.some((p) => glob(p, g.name))) return false;
  if (rule.guests.labels && !rule.guests.labels.some((p) => g.labels.some((l) => glob(p, l)))) return false;
  return true;
}

export class Policy {
  readonly rules: Rules | undefined;
  /** The uid that administers the state dir: root, or the user whose state dir it is. */
  readonly admin: number;

  constructor(rules: Rules | undefined, admin: number) {
    this.rules = rules;
    this.admin = admin;
  }

  isAdmin(id: Identity): boolean {
    // A TLS client is never the admin, whatever uid stands in for it: rules must name its DN.
    if (id.via === 'tls') return false;
    return id.uid === 0 || id.uid === this.admin;
  }

  /** Whether any rule names this caller: the condition to use the read-write socket (or the CLI) at all. */
  admits(id: Identity): Decision {
    if (this.isAdmin(id)) return { allowed: true, why: id.uid === 0 ? 'root' : 'admin' };
    const r = this.rules?.rules.find((rule) => ruleMatchesCaller(rule, id));
    return r
      ? { allowed: true, why: `rule "${r.name}" (line ${r.line})` }
      : {
          allowed: false,
          why: `no rule${this.rules ? ` of ${this.rules.file}` : ' (no access rules file)'} admits ${callerName(id)}`,
        };
  }

  /** The decision for one permission; `guest` is required for `domain:*` permissions. */
  decide(id: Identity, perm: Permission, guest?: GuestFacts): Decision {
    const ro = id.via === 'socket-ro';
    if (ro && !READ_ONLY_PERMISSIONS.has(perm))
      return { allowed: false, why: `${perm} is never granted on the read-only socket` };
    if (this.isAdmin(id)) return { allowed: true, why: id.uid === 0 ? 'root' : 'admin' };
    for (const rule of this.rules?.rules ?? []) {
      if (!rule.permissions.has(perm) || !ruleMatchesCaller(rule, id)) continue;
      if (perm.startsWith('domain:') && (guest === undefined || !ruleSelectsGuest(rule, id, guest))) continue;
      return { allowed: true, why: `rule "${rule.name}" (line ${rule.line})` };
    }
    // The read-only socket's meaning before rules: any local user may look.
    if (ro) return { allowed: true, why: 'read-only socket' };
    return {
      allowed: false,
      why: `${callerName(id)} lacks ${perm}${guest ? ` on guest '${guest.name}' (owner uid ${guest.owner})` : ''}`,
    };
  }
}
