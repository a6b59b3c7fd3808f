import { formatDomainXml } from '../../domain/index.js';
import { arg, type ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';

export async function run(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args);
  const name = arg(args, 0, 'NAME');
  const def = args.flags.has('inactive') ? hv.inactiveDef(name) : hv.lookup(name).def;
  const xml = formatDomainXml(def);
  output(args, xml, { name: def.name, uuid: def.uuid, xml });
  return 0;
}

export async function runDomuuid(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args);
  const def = hv.lookup(arg(args, 0, 'NAME')).def;
  output(args, def.uuid, { uuid: def.uuid });
  return 0;
}
