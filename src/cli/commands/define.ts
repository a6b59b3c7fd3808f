import { SvirtError } from '../../errors.js';
import { readXmlFile } from './read-xml.js';
import { arg, type ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';
import { reportMade } from '../../access/made-guests.js';

export async function run(args: ParsedArgs): Promise<number> {
  const file = arg(args, 0, 'FILE');
  const xml = await readXmlFile(file);
  const hv = await openHypervisor(args);
  const def = hv.define(xml);
  reportMade(def.uuid);
  output(args, `Domain '${def.name}' defined from ${file}`, { name: def.name, uuid: def.uuid });
  return 0;
}

export async function runUndefine(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  if (args.flags.has('nvram') && args.flags.has('keep-nvram')) {
    throw new SvirtError('SVIRT_ERR_USAGE', 'undefine: --nvram and --keep-nvram exclude each other');
  }
  const nvram = args.flags.has('nvram') ? 'remove' : args.flags.has('keep-nvram') ? 'keep' : undefined;
  const hv = await openHypervisor(args);
  if (args.flags.has('tpm') && args.flags.has('keep-tpm')) {
    throw new SvirtError('SVIRT_ERR_USAGE', 'undefine: --tpm and --keep-tpm are mutually exclusive');
  }
  const storage = args.flags.has('remove-all-storage')
    ? await import('./remove-storage.js').then((m) => ({ m, list: m.storageOf(hv, hv.inactiveDef(name)) }))
    : undefined;
  const def = hv.undefine(name, {
    ...(nvram === undefined ? {} : { nvram }),
    keepTpm: args.flags.has('keep-tpm'),
    managedSave: args.flags.has('managed-save'),
    snapshotsMetadata: args.flags.has('snapshots-metadata'),
  });
  const removed = storage ? storage.m.removeStorage(hv, storage.list) : [];
  output(args, [`Domain '${def.name}' has been undefined`, ...removed].join('\n'), {
    name: def.name,
    uuid: def.uuid,
    storage: removed,
  });
  return 0;
}
