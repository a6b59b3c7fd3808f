import { arg, type ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';

/** Every driver's label of a guest: the process label while running, the configured one otherwise. */
export async function run(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args);
  const info = hv.lookup(arg(args, 0, 'NAME'));
  const rows = info.def.seclabels.map((l) => ({
    model: l.model ?? hv.manager.primary.name,
    type: l.type,
    relabel: l.relabel ?? null,
    label: l.label ?? null,
    imagelabel: l.imagelabel ?? null,
    baselabel: l.baselabel ?? null,
  }));
  const text = rows
    .map((r) =>
      [
        `${(r.model + ':').padEnd(10)} ${r.type}${r.relabel === false ? ' (relabel=no)' : ''}`,
        r.label ? `  label:      ${r.label}` : '',
        r.imagelabel ? `  imagelabel: ${r.imagelabel}` : '',
        r.baselabel ? `  baselabel:  ${r.baselabel}` : '',
      ]
        .filter((x) => x !== '')
        .join('\n'),
    )
    .join('\n');
  output(args, text === '' ? `${info.def.name}: no security labels (${info.state})` : text, {
    name: info.def.name,
    state: info.state,
    labels: rows,
  });
  return 0;
}
