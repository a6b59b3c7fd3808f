import { QEMU } from '../helpers.js';

/** A routed network with DHCP on 10.SUBNET.0.0/24 and its own bridge name. */
export function dhcpNetworkXml(name: string, bridge: string, subnet: number): string {
  return `<network>
  <name>${name}</name>
  <bridge name='${bridge}'/>
  <ip address='10.${subnet}.0.1' prefix='24'>
    <dhcp><range start='10.${subnet}.0.10' end='10.${subnet}.0.20'/></dhcp>
  </ip>
</network>
`;
}

/** A diskless 64 MiB guest with one virtio NIC on `network`. */
export function nicGuestXml(name: string, network: string): string {
  return `<domain type='qemu'><name>${name}</name><memory unit='MiB'>64</memory>
<os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices><emulator>${QEMU}</emulator>
<interface type='network'><source network='${network}'/><model type='virtio'/></interface>
</devices></domain>
`;
}
