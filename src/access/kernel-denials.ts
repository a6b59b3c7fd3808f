/**
 * Kernel denials by a guest's label (issue 15, part 4): the SELinux AVC and AppArmor records
 * the kernel logs, parsed, and attributed to the svirt guest whose label they carry.
 *
 * A guest's labels come from the audit trail's `label` events (one per start, with every
 * driver's label) and from the reservations of the guests running now. A label can pass from
 * one guest to another once the first has stopped (an MCS pair is reused at random; an AppArmor
 * profile is named after the uuid), so a denial goes to the guest that took the label last
 * before it happened. The trail records the label event once the start has finished, so a
 * start's own denials come before it: a label event counts from START_GRACE_MS before it.
 *
 * What is matched:
 * - SELinux: the MCS level of `scontext` (the guest did it) or of `tcontext` (something was
 *   denied the guest's files or process). A level without categories (`s0`) says nothing about
 *   which guest, and never matches.
 * - AppArmor: the `profile` (a stack `a//&b` matches on any member, a child `p//hat` on `p`), or
 *   the `peer` of a signal or ptrace.
 */

/** One kernel denial (or a permissive/complain-mode "would deny"). */
export interface KernelDenial {
  /** The record's own time (`audit(SECONDS.MILLIS:SERIAL)`), epoch milliseconds. */
  readonly at: number;
  readonly serial: number;
  readonly lsm: 'selinux' | 'apparmor';
  /** False for SELinux `permissive=1` and AppArmor `ALLOWED` (complain mode): logged, not denied. */
  readonly enforced: boolean;
  /** The subject: SELinux `scontext`, AppArmor `profile`. */
  readonly subject: string;
  /** The object: SELinux `tcontext`, AppArmor `peer` (signals, ptrace) when there is one. */
  readonly object?: string;
  /** What was asked: SELinux `{ perms } tclass`, AppArmor `operation requested_mask`. */
  readonly what: string;
  /** The file or name involved (`name=`/`path=`), as the kernel logged it. */
  readonly name?: string;
  readonly pid?: number;
  readonly comm?: string;
  /** The record's text from `audit(` on. */
  readonly text: string;
}

/** `key=value` and `key="quoted value"` fields of an audit record. */
export function auditFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const m of text.matchAll(/(?:^|\s)([a-z_][a-z0-9_-]*)=("([^"]*)"|'([^']*)'|[^\s]*)/gi)) {
    const key = m[1] ?? '';
    if (!fields.has(key)) fields.set(key, m[3] ?? m[4] ?? m[2] ?? '');
  }
  return fields;
}

const STAMP = /audit\((\d+)\.(\d{1,3}):(\d+)\):\s?(.*)$/;

/**
 * A denial from one line of the kernel log (`audit: type=1400 audit(…): …`) or of audit.log
 * (`type=AVC msg=audit(…): …`); undefined for any other line.
 */
export function parseDenial(line: string): KernelDenial | undefined {
  const m = STAMP.exec(line);
  if (!m) return undefined;
  const at = Number(m[1]) * 1000 + Number((m[2] ?? '0').padEnd(3, '0'));
  const serial = Number(m[3]);
  const body = m[4] ?? '';
  const text = line.slice(line.indexOf('audit('));
  const f = auditFields(body);
  const pid = f.has('pid') ? Number(f.get('pid')) : undefined;
  const common = {
    at,
    serial,
    ...(pid !== undefined && Number.isInteger(pid) ? { pid } : {}),
    ...(f.has('comm') ? { comm: f.get('comm') ?? '' } : {}),
    text,
  };
  const avc = /avc:\s+denied\s+\{([^}]*)\}/.exec(body);
  if (avc) {
    const subject = f.get('scontext');
    if (subject === undefined) return undefined;
    const name = f.get('name') ?? f.get('path');
    return {
      ...common,
      lsm: 'selinux',
      enforced: f.get('permissive') !== '1',
      subject,
      ...(f.has('tcontext') ? { object: f.get('tcontext') ?? '' } : {}),
      what: `{ ${(avc[1] ?? '').trim()} } ${f.get('tclass') ?? '?'}`,
      ...(name !== undefined ? { name } : {}),
    };
  }
  const aa = f.get('apparmor');
  if (aa === 'DENIED' || aa === 'ALLOWED') {
    const subject = f.get('profile');
    if (subject === undefined) return undefined;
    const name = f.get('name') ?? f.get('path');
    return {
      ...common,
      lsm: 'apparmor',
      enforced: aa === 'DENIED',
      subject,
      ...(f.has('peer') ? { object: f.get('peer') ?? '' } : {}),
      what: [f.get('operation') ?? '?', f.get('requested_mask') ?? f.get('denied_mask') ?? f.get('signal') ?? '']
        .filter((s) => s !== '')
        .join(' '),
      ...(name !== undefined ? { name } : {}),
    };
  }
  return undefined;
}

/** The MCS level of a context (`u:r:t:s0:c1,c2` → `s0:c1,c2`), a range `lo-hi` with lo = hi as one level. */
export function contextLevel(context: string): string | undefined {
  const parts = context.split(':');
  if (parts.length < 4) return undefined;
  const level = parts.slice(3).join(':');
  const dash = level.indexOf('-');
  if (dash > 0 && level.slice(0, dash) === level.slice(dash + 1)) return level.slice(0, dash);
  return level;
}

function profileMatches(profile: string, wanted: string): boolean {
  return profile
    .split('//&')
    .map((p) => p.replace(/^:[^:]*:/, '')) // a namespace prefix `:ns:`
    .some((p) => p === wanted || p.startsWith(`${wanted}//`));
}

/** A label a guest held from a time on (its start). */
export interface LabelHold {
  readonly guest: string;
  readonly uuid?: string | undefined;
  readonly driver: 'selinux' | 'apparmor';
  readonly label: string;
  /** When the trail recorded it, epoch ms. */
  readonly since: number;
}

/** How long before its `label` event a start's own denials may come (a start under TCG, a slow disk). */
export const START_GRACE_MS = 120_000;

/** The holds that match one side of a denial. */
function holdsOf(d: KernelDenial, side: 'subject' | 'object', holds: readonly LabelHold[]): LabelHold[] {
  const value = side === 'subject' ? d.subject : d.object;
  if (value === undefined) return [];
  if (d.lsm === 'selinux') {
    const level = contextLevel(value);
    if (level === undefined || !level.includes(':c')) return [];
    return holds.filter((h) => h.driver === 'selinux' && h.label === level);
  }
  return holds.filter((h) => h.driver === 'apparmor' && profileMatches(value, h.label));
}

/** The guest that held a label when `at` happened: the latest hold that began (with grace) before it. */
function holderAt(candidates: readonly LabelHold[], at: number): LabelHold | undefined {
  let best: LabelHold | undefined;
  for (const h of candidates) {
    if (h.since - START_GRACE_MS > at) continue;
    if (best === undefined || h.since > best.since) best = h;
  }
  return best;
}

/** A denial with the guest it concerns, and whether the guest was the one denied or the one protected. */
export interface GuestDenial extends KernelDenial {
  readonly guest: string;
  readonly uuid?: string | undefined;
  /** `subject`: the guest's process was denied; `object`: something was denied the guest's files or process. */
  readonly role: 'subject' | 'object';
  /** The guest's label that matched. */
  readonly label: string;
}

/** Every denial that concerns a guest of `holds`, once per (record, guest, role), oldest first. */
export function attribute(denials: readonly KernelDenial[], holds: readonly LabelHold[]): GuestDenial[] {
  const out: GuestDenial[] = [];
  for (const d of denials) {
    for (const role of ['subject', 'object'] as const) {
      const h = holderAt(holdsOf(d, role, holds), d.at);
      if (h) out.push({ ...d, guest: h.guest, uuid: h.uuid, role, label: h.label });
    }
  }
  return out.sort((a, b) => a.at - b.at || a.serial - b.serial);
}

/** Records seen in more than one source (the kernel log and audit.log) once: by time and serial. */
export function dedupe(denials: readonly KernelDenial[]): KernelDenial[] {
  const seen = new Set<string>();
  return denials.filter((d) => {
    const key = `${d.at}:${d.serial}:${d.subject}:${d.what}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
