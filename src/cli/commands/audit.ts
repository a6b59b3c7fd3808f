import { labelHolds, readAudit, type AuditRow } from '../../access/audit.js';
import type { GuestDenial } from '../../access/kernel-denials.js';
import { SvirtError } from '../../errors.js';
import { Store } from '../../store/store.js';
import type { ParsedArgs } from '../args.js';
import { output, statePaths } from '../context.js';

const DEFAULT_LIMIT = 200;
const MAX_LIMIT = 10_000;

/** `--since`: an ISO time, epoch milliseconds, or an age (`30s`, `15m`, `2h`, `7d`). */
export function parseSince(text: string, now = Date.now()): number {
  const age = /^(\d+)([smhd])$/.exec(text);
  if (age) return now - Number(age[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[age[2] as 's' | 'm' | 'h' | 'd'];
  if (/^\d{10,}$/.test(text)) return Number(text);
  const t = Date.parse(text);
  if (Number.isNaN(t))
    throw new SvirtError(
      'SVIRT_ERR_USAGE',
      `audit: --since ${JSON.stringify(text)} is not a time (ISO 8601, epoch ms, or 30s/15m/2h/7d)`,
    );
  return t;
}

function line(r: AuditRow): string {
  const who = `uid=${r.uid} gid=${r.gid} pid=${r.pid}${r.context ? ` ctx=${r.context}` : ''}`;
  const what = `${r.op}${r.permission ? ` [${r.permission}]` : ''}`;
  const guest = r.guest ? ` guest=${r.guest}${r.uuid ? ` (${r.uuid})` : ''}` : '';
  const labels = r.labels ? ` labels=${r.labels.join(',')}` : '';
  return `${new Date(r.at).toISOString()} ${r.via} ${who} ${what}${guest}${labels} ${r.allowed ? 'allowed' : 'DENIED'}${r.why ? ` (${r.why})` : ''}: ${r.result}`;
}

function denialLine(d: GuestDenial): string {
  const how = d.enforced ? 'denied' : d.lsm === 'selinux' ? 'permissive' : 'complain';
  const proc = d.pid !== undefined ? ` pid=${d.pid}${d.comm !== undefined ? ` comm=${JSON.stringify(d.comm)}` : ''}` : '';
  const name = d.name !== undefined ? ` name=${JSON.stringify(d.name)}` : '';
  const object = d.object !== undefined ? ` object=${d.object}` : '';
  const role = d.role === 'subject' ? 'by the guest' : 'against the guest';
  return `${new Date(d.at).toISOString()} ${d.lsm} ${how} ${role} guest=${d.guest} label=${d.label}: ${d.what}${name}${proc} subject=${d.subject}${object}`;
}

/**
 * `svirt audit --kernel [--guest NAME] [--since T]`: the kernel's SELinux and AppArmor denials
 * that carry a guest's label, from the kernel log and auditd's log. Fails when neither could
 * be read: "no denials" must mean that none was logged, not that svirt could not look.
 */
async function kernelDenials(
  args: ParsedArgs,
  store: Store,
  guest: string | undefined,
  since: number | undefined,
  limit: number,
): Promise<void> {
  const { guestDenials } = await import('../../access/kernel-log.js');
  const r = await guestDenials(labelHolds(store), args.options.get('audit-log'));
  if (r.read.length === 0)
    throw new SvirtError(
      'SVIRT_ERR_HOST',
      `audit --kernel: cannot read the kernel's denials: ${r.unread.map((s) => `${s.source}: ${s.error}`).join('; ')}`,
    );
  for (const s of r.unread)
    process.stderr.write(`note: ${s.source} not read (${s.error}); showing what ${r.read.join(' and ')} holds\n`);
  let found = r.found;
  if (guest !== undefined) found = found.filter((d) => d.guest === guest || d.uuid === guest);
  if (since !== undefined) found = found.filter((d) => d.at >= since);
  found = found.slice(-limit);
  output(args, found.map(denialLine).join('\n'), found);
}

/** `svirt audit [--guest NAME] [--since T] [--limit N] [--kernel [--audit-log PATH]] [--json]`: the newest events, oldest first. */
export async function run(args: ParsedArgs): Promise<number> {
  const limitText = args.options.get('limit');
  const limit = limitText === undefined ? DEFAULT_LIMIT : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT)
    throw new SvirtError('SVIRT_ERR_USAGE', `audit: --limit must be 1..${MAX_LIMIT}`);
  const since = args.options.get('since');
  const guest = args.options.get('guest');
  const store = Store.open(statePaths(args).stateDir);
  try {
    if (args.flags.has('kernel')) {
      await kernelDenials(args, store, guest, since === undefined ? undefined : parseSince(since), limit);
      return 0;
    }
    const rows = readAudit(store.db, {
      limit,
      ...(guest !== undefined ? { guest } : {}),
      ...(since !== undefined ? { since: parseSince(since) } : {}),
    });
    output(args, rows.map(line).join('\n'), rows);
  } finally {
    store.close();
  }
  return 0;
}
