import { readAudit, type AuditRow } from '../../access/audit.js';
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

/** `svirt audit [--guest NAME] [--since T] [--limit N] [--json]`: the newest events, oldest first. */
export async function run(args: ParsedArgs): Promise<number> {
  const limitText = args.options.get('limit');
  const limit = limitText === undefined ? DEFAULT_LIMIT : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT)
    throw new SvirtError('SVIRT_ERR_USAGE', `audit: --limit must be 1..${MAX_LIMIT}`);
  const since = args.options.get('since');
  const guest = args.options.get('guest');
  const store = Store.open(statePaths(args).stateDir);
  try {
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
