import type { ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';

/** virsh's table: ` Id   Name   State`, a dash rule, one row per guest. */
export async function run(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args);
  const all = args.flags.has('all');
  const rows = hv
    .listBrief()
    .filter((d) => all || d.state !== 'shut off')
    .map((d) => ({
      id: d.id === undefined ? '-' : String(d.id),
      name: d.name,
      state: d.state,
      uuid: d.uuid,
      persistent: d.persistent,
    }));
  if (args.flags.has('name')) {
    output(
      args,
      rows.map((r) => r.name).join('\n') + '\n',
      rows.map((r) => r.name),
    );
    return 0;
  }
  const idW = Math.max(2, ...rows.map((r) => r.id.length));
  const nameW = Math.max(4, ...rows.map((r) => r.name.length));
  const header = ` ${'Id'.padEnd(idW)}   ${'Name'.padEnd(nameW)}   State`;
  const lines = [header, '-'.repeat(header.length + 2)];
  for (const r of rows) lines.push(` ${r.id.padEnd(idW)}   ${r.name.padEnd(nameW)}   ${r.state}`);
  output(args, lines.join('\n') + '\n', rows);
  return 0;
}
