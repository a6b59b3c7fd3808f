/**
 * libvirt network XML ↔ NetworkDef, for NAT and isolated IPv4 networks. What svirt does not
 * run (another forward mode, IPv6, routes, DNS records...) is refused with the element and
 * its line, never dropped.
 */
import { isIPv4 } from 'node:net';
import {
  canonicalMac,
  canonicalUuid,
  ifnameProblem,
  networkNameProblem,
  parseXml,
  serializeXml,
  type XmlElement,
} from '../domain/index.js';
import { SvirtError } from '../errors.js';
import { attr, childElements, elem, textOf, type MutableElement } from '../domain/xml-tree.js';
import { inSubnet, ipToInt, netmaskOf, prefixOf } from './ipv4.js';
import type { DhcpHostDef, DhcpRangeDef, NetworkDef, NetworkIpDef } from './network-def.js';
import { randomUuid } from '../host/random.js';

function where(el: XmlElement): string {
  return el.line === undefined ? `<${el.name}>` : `<${el.name}> at line ${el.line}`;
}

function invalid(el: XmlElement, why: string): SvirtError {
  return new SvirtError('SVIRT_ERR_XML_INVALID', `invalid network XML: ${where(el)}: ${why}`, { details: { element: el.name } });
}

function unsupported(el: XmlElement, why: string): SvirtError {
  return new SvirtError('SVIRT_ERR_XML_UNSUPPORTED', `unsupported network XML: ${where(el)}: ${why}`, {
    details: { element: el.name },
  });
}

function one(parent: XmlElement, name: string): XmlElement | undefined {
  const all = childElements(parent, name);
  if (all[1]) throw invalid(all[1], `more than one <${name}>`);
  return all[0];
}

function onlyChildren(el: XmlElement, allowed: readonly string[]): void {
  for (const c of childElements(el))
    if (!allowed.includes(c.name)) throw unsupported(c, `<${c.name}> in <${el.name}> is not supported`);
}

function ipv4(el: XmlElement, name: string): string {
  const v = attr(el, name);
  if (v === undefined) throw invalid(el, `missing ${name}=`);
  if (!isIPv4(v)) throw invalid(el, `${name}=${JSON.stringify(v)} is not an IPv4 address`);
  return v;
}

function yes(el: XmlElement, name: string, dflt: boolean): boolean {
  const v = attr(el, name);
  if (v === undefined) return dflt;
  if (v === 'yes' || v === 'on') return true;
  if (v === 'no' || v === 'off') return false;
  throw invalid(el, `${name}=${JSON.stringify(v)} must be yes or no`);
}

function parseForward(root: XmlElement): NetworkDef['forward'] {
  const f = one(root, 'forward');
  if (!f) return { mode: 'none' };
  const mode = attr(f, 'mode') ?? 'nat';
  if (mode !== 'nat')
    throw unsupported(f, `forward mode ${JSON.stringify(mode)}: svirt runs nat and isolated (no <forward>) networks`);
  onlyChildren(f, ['nat']);
  const dev = attr(f, 'dev');
  if (dev !== undefined && ifnameProblem(dev) !== undefined)
    throw invalid(f, `dev=${JSON.stringify(dev)} is not an interface name`);
  const nat = one(f, 'nat');
  let ports: { start: number; end: number } | undefined;
  if (nat) {
    onlyChildren(nat, ['port']);
    const p = one(nat, 'port');
    if (p) {
      const start = Number(attr(p, 'start'));
      const end = Number(attr(p, 'end'));
      if (!Number.isInteger(start) || !Number.isInteger(end) || start < 1 || end > 65535 || end < start)
        throw invalid(p, 'start= and end= must be ports with start <= end');
      ports = { start, end };
    }
  }
  return { mode: 'nat', ...(dev === undefined ? {} : { dev }), ...(ports === undefined ? {} : { ports }) };
}

function parseIp(el: XmlElement): NetworkIpDef {
  const family = attr(el, 'family') ?? 'ipv4';
  if (family !== 'ipv4') throw unsupported(el, `family=${JSON.stringify(family)}: svirt networks are IPv4`);
  onlyChildren(el, ['dhcp']);
  const address = ipv4(el, 'address');
  const mask = attr(el, 'netmask');
  const rawPrefix = attr(el, 'prefix');
  if (mask !== undefined && rawPrefix !== undefined) throw invalid(el, 'give netmask= or prefix=, not both');
  const prefix = mask !== undefined ? prefixOf(mask) : rawPrefix !== undefined ? Number(rawPrefix) : 24;
  if (prefix === undefined || !Number.isInteger(prefix) || prefix < 8 || prefix > 30)
    throw invalid(el, `the netmask or prefix must be a contiguous IPv4 mask of /8 to /30`);
  if (!inSubnet(address, address, prefix)) throw invalid(el, `${address}/${prefix} is a network or broadcast address`);
  const dhcpEl = one(el, 'dhcp');
  if (!dhcpEl) return { address, prefix };
  onlyChildren(dhcpEl, ['range', 'host']);
  const inside = (e: XmlElement, ip: string): string => {
    if (!inSubnet(ip, address, prefix)) throw invalid(e, `${ip} is not a host address of ${address}/${prefix}`);
    if (ip === address) throw invalid(e, `${ip} is the bridge's own address`);
    return ip;
  };
  const ranges: DhcpRangeDef[] = childElements(dhcpEl, 'range').map((r) => {
    onlyChildren(r, []);
    const start = inside(r, ipv4(r, 'start'));
    const end = inside(r, ipv4(r, 'end'));
    if (ipToInt(end) < ipToInt(start)) throw invalid(r, `the range ends (${end}) before it starts (${start})`);
    return { start, end };
  });
  const hosts: DhcpHostDef[] = childElements(dhcpEl, 'host').map((h) => {
    onlyChildren(h, []);
    const ip = inside(h, ipv4(h, 'ip'));
    const rawMac = attr(h, 'mac');
    const mac = rawMac === undefined ? undefined : canonicalMac(rawMac);
    if (rawMac !== undefined && mac === undefined) throw invalid(h, `mac=${JSON.stringify(rawMac)} is not a unicast MAC address`);
    const name = attr(h, 'name');
    if (name !== undefined && !/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(name))
      throw invalid(h, `name=${JSON.stringify(name)} is not a host name`);
    if (mac === undefined && name === undefined) throw invalid(h, 'a <host> needs mac= or name=');
    return { ip, ...(mac === undefined ? {} : { mac }), ...(name === undefined ? {} : { name }) };
  });
  return { address, prefix, dhcp: { ranges, hosts } };
}

/** Parses network XML; a missing uuid is generated. */
export function parseNetworkXml(text: string, generateUuid: () => string = randomUuid): NetworkDef {
  const root = parseXml(text);
  if (root.name !== 'network') throw invalid(root, `the root element must be <network>, not <${root.name}>`);
  onlyChildren(root, ['name', 'uuid', 'forward', 'bridge', 'mac', 'domain', 'ip', 'dns']);
  const nameEl = one(root, 'name');
  const name = nameEl ? textOf(nameEl).trim() : '';
  if (!nameEl || name === '') throw invalid(root, 'missing <name>');
  const problem = networkNameProblem(name);
  if (problem !== undefined) throw invalid(nameEl, `network name ${JSON.stringify(name)} is not allowed: ${problem}`);
  const uuidEl = one(root, 'uuid');
  const rawUuid = uuidEl ? textOf(uuidEl) : '';
  const uuid = canonicalUuid(rawUuid.trim() === '' ? generateUuid() : rawUuid);
  if (uuid === undefined) throw invalid(uuidEl ?? root, `uuid ${JSON.stringify(rawUuid)} is not a UUID`);
  const bridgeEl = one(root, 'bridge');
  const bridgeName = bridgeEl ? attr(bridgeEl, 'name') : undefined;
  if (bridgeEl && bridgeName !== undefined && ifnameProblem(bridgeName) !== undefined)
    throw invalid(bridgeEl, `name=${JSON.stringify(bridgeName)} is not an interface name: ${ifnameProblem(bridgeName) ?? ''}`);
  const delay = bridgeEl ? Number(attr(bridgeEl, 'delay') ?? '0') : 0;
  if (!Number.isInteger(delay) || delay < 0 || delay > 30) throw invalid(bridgeEl ?? root, 'delay= must be 0 to 30 seconds');
  const macEl = one(root, 'mac');
  const rawMac = macEl ? attr(macEl, 'address') : undefined;
  const mac = rawMac === undefined ? undefined : canonicalMac(rawMac);
  if (macEl && mac === undefined) throw invalid(macEl, `address=${JSON.stringify(rawMac ?? '')} is not a unicast MAC address`);
  const domainEl = one(root, 'domain');
  const domain = domainEl ? attr(domainEl, 'name') : undefined;
  if (domainEl && (domain === undefined || !/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(domain)))
    throw invalid(domainEl, 'name= must be a DNS domain name');
  const dnsEl = one(root, 'dns');
  if (dnsEl) onlyChildren(dnsEl, []);
  const dns = dnsEl ? yes(dnsEl, 'enable', true) : true;
  const ips = childElements(root, 'ip').map(parseIp);
  if (ips.length > 1)
    throw unsupported(childElements(root, 'ip')[1] as XmlElement, 'more than one <ip>: svirt networks have one IPv4 subnet');
  const forward = parseForward(root);
  if (forward.mode === 'nat' && ips.length === 0) throw invalid(root, 'a NAT network needs an <ip address=...>');
  return {
    name,
    uuid,
    forward,
    bridge: {
      ...(bridgeName === undefined ? {} : { name: bridgeName }),
      stp: bridgeEl ? yes(bridgeEl, 'stp', true) : true,
      delay,
    },
    ...(mac === undefined ? {} : { mac }),
    ...(domain === undefined ? {} : { domain }),
    dns,
    ips,
  };
}

/** A definition as libvirt's net-dumpxml writes it. */
export function formatNetworkXml(n: NetworkDef): string {
  const kids: MutableElement[] = [elem('name', [], n.name), elem('uuid', [], n.uuid)];
  if (n.forward.mode === 'nat') {
    const p = n.forward.ports;
    kids.push(
      elem(
        'forward',
        [
          ['mode', 'nat'],
          ['dev', n.forward.dev],
        ],
        p
          ? [
              elem(
                'nat',
                [],
                [
                  elem('port', [
                    ['start', String(p.start)],
                    ['end', String(p.end)],
                  ]),
                ],
              ),
            ]
          : [],
      ),
    );
  }
  kids.push(
    elem('bridge', [
      ['name', n.bridge.name],
      ['stp', n.bridge.stp ? 'on' : 'off'],
      ['delay', String(n.bridge.delay)],
    ]),
  );
  if (n.mac !== undefined) kids.push(elem('mac', [['address', n.mac]]));
  if (n.domain !== undefined) kids.push(elem('domain', [['name', n.domain]]));
  if (!n.dns) kids.push(elem('dns', [['enable', 'no']]));
  for (const ip of n.ips) {
    const dhcp = ip.dhcp
      ? [
          elem(
            'dhcp',
            [],
            [
              ...ip.dhcp.ranges.map((r) =>
                elem('range', [
                  ['start', r.start],
                  ['end', r.end],
                ]),
              ),
              ...ip.dhcp.hosts.map((h) =>
                elem('host', [
                  ['mac', h.mac],
                  ['name', h.name],
                  ['ip', h.ip],
                ]),
              ),
            ],
          ),
        ]
      : [];
    kids.push(
      elem(
        'ip',
        [
          ['address', ip.address],
          ['netmask', netmaskOf(ip.prefix)],
        ],
        dhcp,
      ),
    );
  }
  return serializeXml(elem('network', [], kids));
}
