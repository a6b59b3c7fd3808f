/**
 * The isolation report as one self-contained HTML page: inline CSS, no script, no external
 * resource. Every value is escaped; nothing from a guest or a file name is markup.
 */
import type { EntrypointRules } from '../access/entrypoints.js';
import type { ReportData, ReportGuest, SavedMatrix } from './collect.js';

const CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d1d1f;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ccc}
h3{font-size:15px;margin:16px 0 6px}.meta{color:#555}
table{border-collapse:collapse;margin:6px 0 12px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f2}code,pre{font:12px/1.3 ui-monospace,monospace}pre{background:#f7f7f7;padding:8px;overflow:auto}
.good{background:#dff3e0}.bad{background:#f9d6d5}.warn{background:#fff3cd}.muted{color:#777}
.card{border:1px solid #ccc;border-radius:6px;padding:8px 12px;margin:10px 0}
.summary span{display:inline-block;margin-right:18px}`;

export function esc(text: unknown): string {
  return String(text).replace(/[&<>"']/gu, (c) => `&#${c.charCodeAt(0)};`);
}

function row(cells: readonly string[], tag = 'td'): string {
  return `<tr>${cells.map((c) => `<${tag}>${c}</${tag}>`).join('')}</tr>`;
}

function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  if (rows.length === 0) return '<p class="muted">none</p>';
  return `<table>${row(head.map(esc), 'th')}${rows.map((r) => row(r)).join('')}</table>`;
}

/** held / denied are the good outcomes of a matrix cell; allowed under `none` is expected. */
function cellClass(result: string): string {
  if (result === 'denied' || result === 'held') return 'good';
  if (result === 'allowed' || result === 'broken') return 'bad';
  return 'warn';
}

function guestCard(g: ReportGuest): string {
  const labels = g.security.labels.map((l) => [
    esc(l.model),
    `<code>${esc(l.label || '(none)')}</code>`,
    esc(l.type),
    l.hasEnforcingMode ? esc(l.enforcing ? 'enforcing' : 'permissive') : '<span class="muted">kernel</span>',
  ]);
  const files = g.files.map((f) => [
    esc(f.role),
    f.declared ? `<code>${esc(f.declared)}</code> → <code>${esc(f.path)}</code>` : `<code>${esc(f.path)}</code>`,
    esc(f.owner),
    esc(f.mode),
    f.selinux ? `<code>${esc(f.selinux)}</code>` : '<span class="muted">—</span>',
    f.same === undefined ? '' : f.same ? 'yes' : '<span class="bad">replaced since start</span>',
  ]);
  return `<div class="card" id="guest-${esc(g.uuid)}"><h3>${esc(g.name)} <span class="meta">${esc(g.state)}${
    g.pid ? `, QEMU pid ${g.pid}` : ''
  }</span></h3><p class="meta">uuid <code>${esc(g.uuid)}</code> · stack <code>${esc(g.stack.join(','))}</code> · model ${esc(
    g.security.model,
  )}</p>${table(['driver', 'label', 'type', 'mode'], labels)}${
    g.files.length > 0 ? table(['role', 'file', 'owner', 'mode', 'SELinux label', 'same file'], files) : ''
  }</div>`;
}

interface MatrixLike {
  stacks?: unknown;
  rows?: unknown;
}

function matrixSection(m: SavedMatrix): string {
  const data = m.data as MatrixLike | undefined;
  const head = `<h3>${esc(m.kind)} matrix <span class="meta">saved ${esc(m.savedAt)}</span></h3>`;
  if (!data || !Array.isArray(data.stacks) || !Array.isArray(data.rows)) {
    return `${head}<pre>${esc(JSON.stringify(m.data, null, 2).slice(0, 20_000))}</pre>`;
  }
  const stacks = data.stacks.map(String);
  const rows = (
    data.rows as { id?: unknown; title?: unknown; cells?: Record<string, { result?: unknown; detail?: unknown }> }[]
  ).map((r) => [
    `<b>${esc(r.id ?? '')}</b><br><span class="meta">${esc(r.title ?? '')}</span>`,
    ...stacks.map((s) => {
      const c = r.cells?.[s];
      if (!c) return '<span class="muted">—</span>';
      const result = String(c.result ?? '?');
      return `<div class="${cellClass(result)}"><b>${esc(result)}</b><br><span class="meta">${esc(c.detail ?? '')}</span></div>`;
    }),
  ]);
  return head + table(['row', ...stacks], rows);
}

function entrypointTable(r: EntrypointRules, floorDeny: readonly string[], floorRo: readonly string[]): string {
  return table(
    ['rule', 'value'],
    [
      ['allow', esc(r.allow.join(', '))],
      ['pools', esc(r.pools.join(', ') || '—')],
      ['deny (fixed floor)', esc(floorDeny.join(', '))],
      ['deny', esc(r.deny.join(', ') || '—')],
      ['read-only (fixed floor)', esc(floorRo.join(', '))],
      ['read-only', esc(r.readonly.join(', ') || '—')],
      ['selinux_types', esc(r.selinuxTypes.join(', '))],
      ['hard_links', esc(r.hardLinks)],
      ['block_devices', esc(r.blockDevices)],
    ],
  );
}

function auditSection(events: readonly Record<string, unknown>[]): string {
  if (events.length === 0) return '<p class="muted">no audit events recorded</p>';
  const keys = [...new Set(events.flatMap((e) => Object.keys(e)))].slice(0, 12);
  const rows = events.map((e) => {
    const denied = e['allowed'] === false || e['allowed'] === 0 || e['outcome'] === 'denied';
    return keys.map((k, i) => {
      const v = e[k];
      const text = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
      return i === 0 && denied ? `<span class="bad">${esc(text)}</span>` : esc(text);
    });
  });
  return table(keys, rows);
}

function kernelSection(k: ReportData['kernel']): string {
  if (k === undefined) return '<p class="muted">not looked up</p>';
  const from = `<p class="meta">read: ${esc(k.read.join(', ') || 'nothing')}${
    k.unread.length > 0 ? ` · not read: ${esc(k.unread.join('; '))}` : ''
  }</p>`;
  if (k.read.length === 0) return `${from}<p class="bad">the kernel's logs could not be read: denials unknown</p>`;
  if (k.denials.length === 0) return `${from}<p class="muted">no SELinux or AppArmor record carries a guest's label</p>`;
  return from + auditSection(k.denials);
}

export function renderReport(
  d: ReportData,
  entry: { rules: EntrypointRules; floorDeny: readonly string[]; floorReadonly: readonly string[] },
): string {
  const running = d.guests.filter((g) => g.pid !== undefined).length;
  const badCells = d.matrices.reduce(
    (n, m) => n + (JSON.stringify(m.data).match(/"result":"(allowed|broken)"/gu)?.length ?? 0),
    0,
  );
  const denials = d.audit.filter((e) => e['allowed'] === false || e['allowed'] === 0 || e['outcome'] === 'denied').length;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>svirt isolation report: ${esc(d.host.name)}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<style>${CSS}</style></head><body>
<h1>svirt isolation report</h1>
<p class="meta">host <b>${esc(d.host.name)}</b> · kernel ${esc(d.host.kernel)} · LSMs <code>${esc(d.host.lsms)}</code> · state <code>${esc(
    d.host.stateDir,
  )}</code> · stack <code>${esc(d.stack.join(','))}</code> · generated ${esc(d.generatedAt)}</p>
<p class="summary"><span><b>${d.guests.length}</b> guests</span><span><b>${running}</b> running</span><span><b>${
    d.matrices.length
  }</b> saved matrices (${badCells} cells allowed or broken, <code>none</code> columns included)</span><span><b>${denials}</b> audit denials</span></p>
<h2>Guests</h2>${d.guests.length === 0 ? '<p class="muted">no guests defined</p>' : d.guests.map(guestCard).join('\n')}
<h2>Attack matrices</h2>${
    d.matrices.length === 0
      ? '<p class="muted">none saved yet: run <code>svirt demo</code>, <code>svirt demo --local</code></p>'
      : d.matrices.map(matrixSection).join('\n')
  }
<h2>Access rules in force</h2>
${d.rules === undefined ? '<p>No rules file: the defaults apply (root may do everything).</p>' : `<pre>${esc(d.rules)}</pre>`}
<h3>Image entrypoints</h3>${entrypointTable(entry.rules, entry.floorDeny, entry.floorReadonly)}
<h2>Audit events <span class="meta">(denials first, newest first)</span></h2>${auditSection(d.audit)}
<h2>Kernel denials by guest label <span class="meta">(newest first)</span></h2>${kernelSection(d.kernel)}
</body></html>
`;
}
