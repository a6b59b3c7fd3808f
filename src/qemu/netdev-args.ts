/**
 * QEMU's view of a NIC: a `-netdev` backend over an fd svirt made (a tap, or a socket
 * connected to passt) or QEMU's own slirp, and a `-device` with the guest's MAC. Start and
 * hot-plug use the same ids and properties, so a saved state restores into the same tree.
 */
import type { DomainDef, InterfaceDef, NicModel } from '../domain/index.js';
import { SvirtError } from '../errors.js';
import { pciProps } from './argv-machine.js';

/** What backs one NIC inside QEMU; fds are numbers in QEMU's fd table (or getfd names for QMP). */
export type NicBackend =
  | { readonly kind: 'tap'; readonly fd: number | string; readonly vhostFd?: number | string }
  | { readonly kind: 'stream'; readonly fd: number | string }
  /**
   * The same framing as `stream` over a connected socket, for hot-plug: QEMU 7.2 connects a
   * stream netdev in a worker thread, where a getfd name cannot be looked up ("connection
   * error"); `socket` takes the named fd in the QMP command itself.
   */
  | { readonly kind: 'socket'; readonly fd: string }
  | { readonly kind: 'user' };

const DEVICE: Readonly<Record<NicModel, string>> = {
  virtio: 'virtio-net-pci',
  e1000: 'e1000',
  e1000e: 'e1000e',
  rtl8139: 'rtl8139',
};

/** The QEMU device id of a NIC (its alias) and the id of its backend (libvirt's `host` + alias). */
export function nicIds(nic: InterfaceDef): { device: string; netdev: string } {
  if (nic.alias === undefined) throw new SvirtError('SVIRT_ERR_INTERNAL', 'a NIC reached QEMU without an alias');
  return { device: nic.alias, netdev: `host${nic.alias}` };
}

/** QMP `netdev_add` arguments of a NIC's backend. */
export function netdevProps(nic: InterfaceDef, b: NicBackend): Record<string, unknown> {
  const id = nicIds(nic).netdev;
  switch (b.kind) {
    case 'tap':
      return {
        type: 'tap',
        id,
        fd: String(b.fd),
        ...(b.vhostFd === undefined ? {} : { vhost: true, vhostfd: String(b.vhostFd) }),
      };
    case 'stream':
      return { type: 'stream', id, server: false, addr: { type: 'fd', str: String(b.fd) } };
    case 'socket':
      return { type: 'socket', id, fd: b.fd };
    case 'user':
      return { type: 'user', id };
  }
}

/** QMP `device_add` (and `-device`) properties of a NIC. */
export function nicDeviceProps(def: DomainDef, nic: InterfaceDef): Record<string, string> {
  if (nic.mac === undefined) throw new SvirtError('SVIRT_ERR_INTERNAL', `domain '${def.name}': a NIC reached QEMU without a MAC`);
  const ids = nicIds(nic);
  // libvirt's default model for x86 guests.
  return {
    driver: DEVICE[nic.model ?? 'rtl8139'],
    netdev: ids.netdev,
    id: ids.device,
    mac: nic.mac,
    ...pciProps(def, nic.address),
  };
}

/** `-netdev` and `-device` for one NIC. */
export function nicArgs(def: DomainDef, nic: InterfaceDef, b: NicBackend): string[] {
  const n = netdevProps(nic, b);
  let netdev: string;
  switch (b.kind) {
    case 'tap':
      netdev = `tap,id=${String(n['id'])},fd=${b.fd}${b.vhostFd === undefined ? '' : `,vhost=on,vhostfd=${b.vhostFd}`}`;
      break;
    case 'stream':
      netdev = `stream,id=${String(n['id'])},server=off,addr.type=fd,addr.str=${b.fd}`;
      break;
    case 'socket':
      throw new SvirtError('SVIRT_ERR_INTERNAL', `a socket netdev (${b.fd}) is for hot-plug only: a start uses stream`);
    case 'user':
      netdev = `user,id=${String(n['id'])}`;
      break;
  }
  const { driver, ...rest } = nicDeviceProps(def, nic);
  const device = [driver, ...Object.entries(rest).map(([k, v]) => `${k}=${v}`)].join(',');
  return ['-netdev', netdev, '-device', device];
}

/** The NICs whose link starts down: QEMU sets them with `set_link` before the guest runs. */
export function linksDown(def: DomainDef): string[] {
  return def.interfaces.filter((n) => n.link === 'down').map((n) => nicIds(n).device);
}
