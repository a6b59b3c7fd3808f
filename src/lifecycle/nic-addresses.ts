/**
 * `domifaddr`: a guest's addresses as the host knows them. A network NIC's address is its
 * DHCP lease in the network's dnsmasq leases file; a passt NIC's is the one passt hands out
 * (by default the host's own address on its default-route interface, docs/network.md).
 */
import { isIP } from 'node:net';
import { SvirtError } from '../errors.js';
import type { Guest } from './guest.js';
import type { Networks } from './networks.js';

export interface IfAddress {
  /** The tap name, or `-` for a NIC without a host device. */
  readonly name: string;
  readonly mac: string;
  readonly protocol: 'ipv4';
  readonly address: string;
  readonly prefix: number;
}

/** `lease`: DHCP leases and passt (interfaceAddresses); `agent`: the guest agent (agentAddresses). */
export type AddressSource = 'lease' | 'agent' | 'arp';

/** The guest's addresses from `source` (`lease`: DHCP leases and passt). */
export function interfaceAddresses(
  guest: Guest,
  networks: Networks,
  source: AddressSource,
  passtAddress: () => { address: string; prefix: number } | undefined,
): IfAddress[] {
  if (source !== 'lease') {
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domifaddr --source ${source} is not supported (use lease or agent)`);
  }
  if (!guest.record) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${guest.def.name}' is not running`);
  const out: IfAddress[] = [];
  for (const nic of guest.def.interfaces) {
    if (nic.mac === undefined) continue;
    const name = nic.target ?? '-';
    if (nic.type === 'network' && nic.source !== undefined) {
      for (const l of networks.leases(nic.source)) {
        if (l.mac === nic.mac) out.push({ name, mac: nic.mac, protocol: 'ipv4', address: l.ip, prefix: l.prefix });
      }
    } else if (nic.type === 'user') {
      // QEMU's slirp hands out 10.0.2.15/24; passt the host's own address (passt.ts).
      const a = nic.backend === 'default' ? { address: '10.0.2.15', prefix: 24 } : passtAddress();
      if (a) out.push({ name, mac: nic.mac, protocol: 'ipv4', ...a });
    }
  }
  return out;
}

/**
 * The addresses in a guest agent's `guest-network-get-interfaces` reply (`--source agent`),
 * as the guest reports them: untrusted input, so every field is checked and the lists are
 * bounded. Names are the guest's own (eth0, lo), as virsh shows them.
 */
export function agentAddresses(reply: string): IfAddress[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(reply);
  } catch {
    throw new SvirtError('SVIRT_ERR_AGENT', 'the guest agent answered guest-network-get-interfaces with no JSON');
  }
  const list = (parsed as { return?: unknown }).return;
  if (!Array.isArray(list))
    throw new SvirtError('SVIRT_ERR_AGENT', 'the guest agent answered guest-network-get-interfaces with an error');
  const out: IfAddress[] = [];
  for (const iface of list.slice(0, 256) as Record<string, unknown>[]) {
    const name = typeof iface['name'] === 'string' ? iface['name'].slice(0, 64).replace(/[^\x21-\x7e]/g, '?') : '?';
    const mac = typeof iface['hardware-address'] === 'string' ? iface['hardware-address'].slice(0, 17) : '-';
    const addrs = Array.isArray(iface['ip-addresses']) ? (iface['ip-addresses'] as Record<string, unknown>[]).slice(0, 64) : [];
    for (const a of addrs) {
      const ip = a['ip-address'];
      const prefix = a['prefix'];
      if (a['ip-address-type'] !== 'ipv4' || typeof ip !== 'string' || isIP(ip) !== 4) continue;
      if (typeof prefix !== 'number' || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) continue;
      out.push({ name, mac, protocol: 'ipv4', address: ip, prefix });
    }
  }
  return out;
}
