/** virsh's tables: a header, a dash rule, padded columns (three spaces apart, one space in front). */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    ` ${cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('   ')}`.trimEnd();
  const head = line(headers);
  const width = widths.reduce((a, w) => a + w, 0) + 3 * (widths.length - 1) + 2;
  return [head, '-'.repeat(Math.max(head.length + 1, width)), ...rows.map(line)].join('\n') + '\n';
}
