/**
 * `domifaddr`: a guest's addresses as the host knows them. A network NIC's address is its
 * DHCP lease in the network's dnsmasq leases file; a passt NIC's is the one passt hands out
 * (by default the host's own address on its default-route interface, docs/network.md).
 */
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

export type AddressSource = 'lease' | 'agent' | 'arp';

/** The guest's addresses from `source` (`lease`: DHCP leases and passt). */
export function interfaceAddresses(
  guest: Guest,
  networks: Networks,
  source: AddressSource,
  passtAddress: () => { address: string; prefix: number } | undefined,
): IfAddress[] {
  if (source !== 'lease') {
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domifaddr --source ${source} is not supported (use --source lease)`);
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
