import type { Lease, NetworkInfo } from '../../lifecycle/networks.js';
import { arg, type ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';
import { readXmlFile } from './read-xml.js';
import { table } from './table.js';
import { Networks } from '../../lifecycle/networks.js';

function summary(n: NetworkInfo): Record<string, unknown> {
  return {
    name: n.def.name,
    uuid: n.def.uuid,
    active: n.active,
    autostart: n.autostart,
    persistent: true,
    bridge: n.runtime?.bridge ?? n.def.bridge.name,
  };
}

/** `net-define FILE` */
export async function runNetDefine(args: ParsedArgs): Promise<number> {
  const file = arg(args, 0, 'FILE');
  const xml = await readXmlFile(file, 'network XML');
  const hv = await openHypervisor(args);
  const def = new Networks(hv.env).define(xml);
  output(args, `Network ${def.name} defined from ${file}`, { name: def.name, uuid: def.uuid });
  return 0;
}

export async function runNetUndefine(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args);
  const def = new Networks(hv.env).undefine(arg(args, 0, 'NAME'));
  output(args, `Network ${def.name} has been undefined`, { name: def.name, uuid: def.uuid });
  return 0;
}

export async function runNetStart(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args);
  const n = await new Networks(hv.env).start(arg(args, 0, 'NAME'));
  output(args, `Network ${n.def.name} started`, summary(n));
  return 0;
}

export async function runNetDestroy(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args);
  const name = arg(args, 0, 'NAME');
  await new Networks(hv.env).destroy(name);
  output(args, `Network ${name} destroyed`, { name });
  return 0;
}

/** `net-list [--all] [--inactive]`: virsh's table. */
export async function runNetList(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args);
  const all = args.flags.has('all');
  const inactive = args.flags.has('inactive');
  const nets = new Networks(hv.env).list().filter((n) => all || (inactive ? !n.active : n.active));
  const rows = nets.map((n) => [n.def.name, n.active ? 'active' : 'inactive', n.autostart ? 'yes' : 'no', 'yes']);
  output(args, table(['Name', 'State', 'Autostart', 'Persistent'], rows), nets.map(summary));
  return 0;
}

export async function runNetInfo(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args);
  const n = new Networks(hv.env).get(arg(args, 0, 'NAME'));
  const yn = (b: boolean): string => (b ? 'yes' : 'no');
  const lines = [
    ['Name:', n.def.name],
    ['UUID:', n.def.uuid],
    ['Active:', yn(n.active)],
    ['Persistent:', 'yes'],
    ['Autostart:', yn(n.autostart)],
    ['Bridge:', n.runtime?.bridge ?? n.def.bridge.name ?? ''],
  ];
  output(args, lines.map(([k, v]) => `${(k ?? '').padEnd(16)}${v ?? ''}`).join('\n') + '\n', summary(n));
  return 0;
}

export async function runNetDumpxml(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args);
  const xml = new Networks(hv.env).dumpXml(arg(args, 0, 'NAME'));
  output(args, xml, { xml });
  return 0;
}

/** `net-autostart NAME [--disable]` */
export async function runNetAutostart(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args);
  const name = arg(args, 0, 'NAME');
  const on = !args.flags.has('disable');
  new Networks(hv.env).setAutostart(name, on);
  output(args, on ? `Network ${name} marked as autostarted` : `Network ${name} unmarked as autostarted`, { name, autostart: on });
  return 0;
}

function expiry(seconds: number): string {
  if (seconds === 0) return 'never';
  const d = new Date(seconds * 1000);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** `net-dhcp-leases NAME [--mac MAC]`: virsh's table. */
export async function runNetDhcpLeases(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args);
  const mac = args.options.get('mac')?.toLowerCase();
  const leases: Lease[] = new Networks(hv.env).leases(arg(args, 0, 'NAME')).filter((l) => mac === undefined || l.mac === mac);
  const rows = leases.map((l) => [expiry(l.expiry), l.mac, 'ipv4', `${l.ip}/${l.prefix}`, l.hostname ?? '-', l.clientId ?? '-']);
  output(args, table(['Expiry Time', 'MAC address', 'Protocol', 'IP address', 'Hostname', 'Client ID or DUID'], rows), leases);
  return 0;
}
