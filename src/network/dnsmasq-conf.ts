/**
 * The dnsmasq configuration svirt writes for a network (golden-file tested): DHCP (and DNS
 * unless `<dns enable='no'/>`) on the network's bridge alone, leases in the network's state
 * dir, dropped to the unprivileged `dnsmasq` user once its sockets are bound.
 */
import { netmaskOf } from './ipv4.js';
import type { NetworkDef } from './network-def.js';

export interface DnsmasqPaths {
  readonly leases: string;
  readonly pid: string;
}

/** The unprivileged user dnsmasq drops to (Debian's dnsmasq-base makes it). */
export const DNSMASQ_USER = 'dnsmasq';

export function dnsmasqConf(net: NetworkDef, bridge: string, paths: DnsmasqPaths, user = DNSMASQ_USER): string {
  const ip = net.ips[0];
  const lines = [
    '# Written by svirt for its network; svirt net-start writes it anew. Do not edit.',
    `# network ${net.name} (${net.uuid})`,
    'strict-order',
    'no-hosts',
    'bind-dynamic',
    `interface=${bridge}`,
    'except-interface=lo',
    `pid-file=${paths.pid}`,
    `user=${user}`,
    'group=nogroup',
  ];
  if (!net.dns) lines.push('port=0');
  if (net.domain !== undefined) lines.push(`domain=${net.domain}`, `local=/${net.domain}/`, 'expand-hosts');
  const dhcp = ip?.dhcp;
  if (ip && dhcp && dhcp.ranges.length > 0) {
    let size = 0;
    for (const r of dhcp.ranges) {
      lines.push(`dhcp-range=${r.start},${r.end},${netmaskOf(ip.prefix)}`);
      size += ipSpan(r.start, r.end);
    }
    lines.push('dhcp-no-override', 'dhcp-authoritative', `dhcp-lease-max=${size}`, `dhcp-leasefile=${paths.leases}`);
    for (const h of dhcp.hosts) lines.push(`dhcp-host=${[h.mac, h.ip, h.name].filter((x) => x !== undefined).join(',')}`);
  }
  return lines.join('\n') + '\n';
}

function ipSpan(start: string, end: string): number {
  const n = (ip: string): number => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
  return n(end) - n(start) + 1;
}
