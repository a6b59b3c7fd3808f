/**
 * The snapshot verbs, as virsh has them: snapshot-create-as, snapshot-create, snapshot-list,
 * snapshot-info, snapshot-dumpxml, snapshot-current, snapshot-revert, snapshot-delete
 * (src/lifecycle/snapshots/, docs/snapshots.md).
 */
import { SvirtError } from '../../errors.js';
import { escapeAttr, escapeText } from '../../domain/xml.js';
import { Snapshots, type SnapshotRecord } from '../../lifecycle/snapshots/snapshots.js';
import { arg, type ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';
import { readXmlFile } from './read-xml.js';

async function snapshots(args: ParsedArgs): Promise<Snapshots> {
  return new Snapshots((await openHypervisor(args)).env);
}

/** `--diskspec vda,snapshot=external,file=/path` as a <disk> element. */
function diskspecXml(spec: string): string {
  const [name, ...rest] = spec.split(',');
  if (name === undefined || name === '') throw new SvirtError('SVIRT_ERR_USAGE', `--diskspec ${JSON.stringify(spec)}: no disk`);
  let snapshot = 'external';
  let file: string | undefined;
  for (const kv of rest) {
    const [k, v] = kv.split('=', 2);
    if (k === 'snapshot' && v !== undefined) snapshot = v;
    else if (k === 'file' && v !== undefined) file = v;
    else throw new SvirtError('SVIRT_ERR_USAGE', `--diskspec: unknown part ${JSON.stringify(kv)} (snapshot=, file=)`);
  }
  const src = file === undefined ? '' : `<source file='${escapeAttr(file)}'/>`;
  return `<disk name='${escapeAttr(name)}' snapshot='${escapeAttr(snapshot)}'>${src}</disk>`;
}

export async function runSnapshotCreateAs(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const snap = args.positional[1];
  const desc = args.options.get('description');
  const spec = args.options.get('diskspec');
  const diskOnly = args.flags.has('disk-only');
  const xml =
    '<domainsnapshot>' +
    (snap === undefined ? '' : `<name>${escapeText(snap)}</name>`) +
    (desc === undefined ? '' : `<description>${escapeText(desc)}</description>`) +
    (diskOnly ? "<memory snapshot='no'/>" : '') +
    (spec === undefined ? '' : `<disks>${diskspecXml(spec)}</disks>`) +
    '</domainsnapshot>';
  const s = await (await snapshots(args)).create(name, xml, { diskOnly });
  output(args, `Domain snapshot ${s.name} created`, s);
  return 0;
}

export async function runSnapshotCreate(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const file = args.positional[1];
  const xml = file === undefined ? '<domainsnapshot/>' : await readXmlFile(file, 'snapshot XML');
  const s = await (await snapshots(args)).create(name, xml, { diskOnly: args.flags.has('disk-only') });
  output(args, `Domain snapshot ${s.name} created${file === undefined ? '' : ` from '${file}'`}`, s);
  return 0;
}

function when(s: SnapshotRecord): string {
  return new Date(s.creationTime * 1000)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' +0000');
}

export async function runSnapshotList(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const list = (await snapshots(args)).list(name);
  if (args.flags.has('name')) {
    output(
      args,
      list.map((s) => s.name).join('\n'),
      list.map((s) => s.name),
    );
    return 0;
  }
  const w = Math.max(4, ...list.map((s) => s.name.length));
  const rows = [` ${'Name'.padEnd(w)}   ${'Creation Time'.padEnd(25)}   State`, '-'.repeat(w + 45)];
  for (const s of list) rows.push(` ${s.name.padEnd(w)}   ${when(s).padEnd(25)}   ${s.state}`);
  output(args, rows.join('\n'), list);
  return 0;
}

function pick(args: ParsedArgs, snaps: Snapshots, name: string): string {
  if (args.flags.has('current')) {
    const cur = snaps.current(name);
    if (!cur) throw new SvirtError('SVIRT_ERR_NO_DOMAIN_SNAPSHOT', `domain '${name}' has no current snapshot`);
    return cur.name;
  }
  return arg(args, 1, 'SNAPSHOT');
}

export async function runSnapshotInfo(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const snaps = await snapshots(args);
  const s = snaps.get(name, pick(args, snaps, name));
  const all = snaps.list(name);
  const descendants = (n: string): number => all.filter((c) => c.parent === n).reduce((k, c) => k + 1 + descendants(c.name), 0);
  const fields: [string, string][] = [
    ['Name', s.name],
    ['Domain', name],
    ['Current', snaps.current(name)?.name === s.name ? 'yes' : 'no'],
    ['State', s.state],
    ['Location', s.kind],
    ['Parent', s.parent ?? '-'],
    ['Children', String(all.filter((c) => c.parent === s.name).length)],
    ['Descendants', String(descendants(s.name))],
    ['Metadata', 'yes'],
  ];
  output(args, fields.map(([k, v]) => `${`${k}:`.padEnd(16)}${v}`).join('\n'), s);
  return 0;
}

export async function runSnapshotDumpxml(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const snaps = await snapshots(args);
  const xml = snaps.xml(name, pick(args, snaps, name));
  output(args, xml, { xml });
  return 0;
}

export async function runSnapshotCurrent(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const snaps = await snapshots(args);
  const cur = snaps.current(name);
  if (!cur) throw new SvirtError('SVIRT_ERR_NO_DOMAIN_SNAPSHOT', `domain '${name}' has no current snapshot`);
  output(args, args.flags.has('name') ? cur.name : snaps.xml(name, cur.name), cur);
  return 0;
}

export async function runSnapshotRevert(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const snaps = await snapshots(args);
  const snap = pick(args, snaps, name);
  await snaps.revert(name, snap);
  output(args, '', { name, snapshot: snap });
  return 0;
}

export async function runSnapshotDelete(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const snaps = await snapshots(args);
  const snap = pick(args, snaps, name);
  await snaps.delete(name, snap, args.flags.has('metadata'));
  output(args, `Domain snapshot ${snap} deleted`, { name, snapshot: snap });
  return 0;
}
