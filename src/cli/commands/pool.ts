/** The pool-* verbs (virsh's names and output shapes) over src/lifecycle/storage.ts. */
import { StoragePools, type PoolInfo } from '../../lifecycle/storage.js';
import { arg, type ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';
import { readXmlFile } from './read-xml.js';
import { table } from './table.js';
import { escapeText } from '../../domain/xml.js';
import { SvirtError } from '../../errors.js';

const yn = (b: boolean): string => (b ? 'yes' : 'no');

function summary(p: PoolInfo): Record<string, unknown> {
  return { name: p.def.name, uuid: p.def.uuid, path: p.def.path, active: p.active, autostart: p.autostart, persistent: true };
}

/** The state dir's storage pools and volumes (the pool and vol verbs; the Hypervisor does not load them). */
export async function openStorage(args: ParsedArgs): Promise<StoragePools> {
  return new StoragePools((await openHypervisor(args)).env);
}

/** `pool-define FILE` */
export async function runPoolDefine(args: ParsedArgs): Promise<number> {
  const file = arg(args, 0, 'FILE');
  const xml = await readXmlFile(file, 'storage pool XML');
  const def = (await openStorage(args)).define(xml);
  output(args, `Pool ${def.name} defined from ${file}`, { name: def.name, uuid: def.uuid });
  return 0;
}

/** `pool-define-as NAME dir --target PATH` (virsh's form; only dir pools). */
export async function runPoolDefineAs(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const type = arg(args, 1, 'TYPE');
  const target = args.options.get('target') ?? args.positional[6];
  if (target === undefined) throw new SvirtError('SVIRT_ERR_USAGE', 'pool-define-as NAME dir --target PATH');
  const xml = `<pool type='${escapeText(type)}'><name>${escapeText(name)}</name><target><path>${escapeText(target)}</path></target></pool>`;
  const def = (await openStorage(args)).define(xml);
  output(args, `Pool ${def.name} defined`, { name: def.name, uuid: def.uuid });
  return 0;
}

async function simple(args: ParsedArgs, act: (s: StoragePools, name: string) => void, said: string) {
  const name = arg(args, 0, 'POOL');
  act(await openStorage(args), name);
  output(args, `Pool ${name} ${said}`, { name });
  return 0;
}

export const runPoolBuild = (a: ParsedArgs): Promise<number> => simple(a, (s, n) => s.build(n), 'built');
export const runPoolStart = (a: ParsedArgs): Promise<number> =>
  simple(
    a,
    (s, n) => {
      if (a.flags.has('build')) s.build(n);
      s.start(n);
    },
    'started',
  );
export const runPoolDestroy = (a: ParsedArgs): Promise<number> => simple(a, (s, n) => s.destroy(n), 'destroyed');
export const runPoolDelete = (a: ParsedArgs): Promise<number> => simple(a, (s, n) => s.delete(n), 'deleted');
export const runPoolUndefine = (a: ParsedArgs): Promise<number> => simple(a, (s, n) => void s.undefine(n), 'has been undefined');
export const runPoolRefresh = (a: ParsedArgs): Promise<number> => simple(a, (s, n) => s.refresh(n), 'refreshed');

export async function runPoolAutostart(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'POOL');
  const on = !args.flags.has('disable');
  (await openStorage(args)).setAutostart(name, on);
  output(args, on ? `Pool ${name} marked as autostarted` : `Pool ${name} unmarked as autostarted`, { name, autostart: on });
  return 0;
}

/** `pool-list [--all] [--inactive] [--details]` */
export async function runPoolList(args: ParsedArgs): Promise<number> {
  const all = args.flags.has('all');
  const inactive = args.flags.has('inactive');
  const pools = (await openStorage(args)).list().filter((p) => all || (inactive ? !p.active : p.active));
  const rows = pools.map((p) => [p.def.name, p.active ? 'active' : 'inactive', yn(p.autostart)]);
  output(args, table(['Name', 'State', 'Autostart'], rows), pools.map(summary));
  return 0;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(2)} ${units[u] ?? ''}`;
}

export async function runPoolInfo(args: ParsedArgs): Promise<number> {
  const storage = await openStorage(args);
  const p = storage.get(arg(args, 0, 'POOL'));
  const s = storage.sizes(p.def.name);
  const lines = [
    ['Name:', p.def.name],
    ['UUID:', p.def.uuid],
    ['State:', p.active ? 'running' : 'inactive'],
    ['Persistent:', 'yes'],
    ['Autostart:', yn(p.autostart)],
    ...(p.active
      ? [
          ['Capacity:', bytes(s.capacity)],
          ['Allocation:', bytes(s.allocation)],
          ['Available:', bytes(s.available)],
        ]
      : []),
  ];
  output(args, lines.map(([k, v]) => `${(k ?? '').padEnd(16)}${v ?? ''}`).join('\n') + '\n', { ...summary(p), ...s });
  return 0;
}

export async function runPoolDumpxml(args: ParsedArgs): Promise<number> {
  const xml = (await openStorage(args)).dumpXml(arg(args, 0, 'POOL'));
  output(args, xml, { xml });
  return 0;
}

export { bytes };
