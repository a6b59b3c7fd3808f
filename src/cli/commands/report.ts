import { join } from 'node:path';
import { labelHolds, readAudit } from '../../access/audit.js';
import { FLOOR_DENY, FLOOR_READONLY } from '../../access/entrypoints.js';
import { RULES_FILE } from '../../access/rules-file.js';
import { SvirtError, errnoOf } from '../../errors.js';
import { collectGuests, hostFacts, readSmall, savedMatrices, type ReportData } from '../../report/collect.js';
import { renderReport } from '../../report/html.js';
import { writeWhole } from '../../report/saved.js';
import type { ParsedArgs } from '../args.js';
import { openHypervisor, statePaths } from '../context.js';
import { writeOut } from '../write.js';

/**
 * `svirt report [FILE]`: the isolation report, one self-contained HTML page (to stdout
 * without FILE). FILE is replaced whole: written beside it, then renamed over it.
 */
/** Audit rows the report shows at most. */
const AUDIT_ROWS = 300;

export async function run(args: ParsedArgs): Promise<number> {
  const file = args.positional[0];
  const paths = statePaths(args);
  const hv = await openHypervisor(args);
  const data: ReportData = {
    generatedAt: new Date().toISOString(),
    host: hostFacts(paths.stateDir),
    stack: hv.manager.names,
    guests: await collectGuests(hv),
    matrices: savedMatrices(paths.stateDir),
    ...optional('rules', readSmall(join(paths.stateDir, RULES_FILE), 1 << 20)),
    audit: recentAudit(hv),
    kernel: await kernelDenials(hv),
  };
  const html = renderReport(data, { rules: hv.env.entrypointRules, floorDeny: FLOOR_DENY, floorReadonly: FLOOR_READONLY });
  if (file === undefined) {
    writeOut(html);
    return 0;
  }
  writeReport(file, html);
  process.stderr.write(
    `report: ${data.guests.length} guests, ${data.matrices.length} matrices, ${data.audit.length} audit events -> ${file}\n`,
  );
  return 0;
}

/** The newest audit rows, denials first (each group newest first). */
function recentAudit(hv: Awaited<ReturnType<typeof openHypervisor>>): Record<string, unknown>[] {
  const rows = readAudit(hv.store.db, { limit: AUDIT_ROWS });
  const shown = rows.map((r) => ({
    at: new Date(r.at).toISOString(),
    allowed: r.allowed,
    via: r.via,
    uid: r.uid,
    pid: r.pid,
    op: r.op,
    permission: r.permission ?? '',
    guest: r.guest ?? '',
    labels: r.labels?.join(', ') ?? '',
    result: r.result,
    why: r.why ?? '',
  }));
  return [...shown.filter((r) => !r.allowed).reverse(), ...shown.filter((r) => r.allowed).reverse()];
}

/** The newest kernel denials that carry a guest's label (svirt audit --kernel). */
async function kernelDenials(hv: Awaited<ReturnType<typeof openHypervisor>>): Promise<NonNullable<ReportData['kernel']>> {
  const { guestDenials } = await import('../../access/kernel-log.js');
  const r = await guestDenials(labelHolds(hv.store));
  const denials = r.found
    .slice(-AUDIT_ROWS)
    .reverse()
    .map((d) => ({
      at: new Date(d.at).toISOString(),
      allowed: !d.enforced,
      guest: d.guest,
      role: d.role === 'subject' ? 'by the guest' : 'against the guest',
      lsm: d.lsm,
      label: d.label,
      what: d.what,
      name: d.name ?? '',
      pid: d.pid ?? '',
      subject: d.subject,
      object: d.object ?? '',
    }));
  return { denials, read: r.read, unread: r.unread.map((u) => `${u.source} (${u.error})`) };
}

function optional<K extends string, V>(key: K, v: V | undefined): { [k in K]?: V } {
  return v === undefined ? {} : ({ [key]: v } as { [k in K]: V });
}

/** The page replaces FILE whole (report/saved.ts); a failure is one line naming FILE. */
function writeReport(file: string, html: string): void {
  try {
    writeWhole(file, html, 0o644);
  } catch (err) {
    throw new SvirtError('SVIRT_ERR_HOST', `cannot write "${file}": ${errnoOf(err) ?? String(err)}`, { cause: err });
  }
}
