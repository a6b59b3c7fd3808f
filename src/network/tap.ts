/**
 * The tap of a bridge or network NIC: made by svirt through /dev/net/tun (the native addon),
 * put on its bridge, and handed to QEMU as an fd (plus a vhost-net fd when the host has
 * /dev/vhost-net). QEMU never opens /dev/net/tun or touches a bridge itself.
 *
 * What a guest that owns its QEMU can do with the fd (docs/network.md): send and receive
 * frames on its bridge with any source address (no filtering, as libvirt without nwfilter),
 * and the tun ioctls of an attached queue: TUNSETPERSIST and TUNSETOWNER, which would let
 * the tap outlive QEMU. So every stop, cleanup and reconcile deletes the recorded tap by
 * name and ifindex (never a later device of the same name), whatever QEMU did to it.
 */
import { closeSync, constants, existsSync, openSync } from 'node:fs';
import type { InterfaceDef } from '../domain/index.js';
import { SvirtError, errnoOf } from '../errors.js';
import { isNativeSystemError, tapCreate, type Tap } from '../host/native.js';
import { run } from './cmd.js';
import { deleteLink, isTap, linkExists, requireBridge } from './links.js';

export const VHOST_NET = '/dev/vhost-net';

/** What QEMU gets for one tap NIC; svirt closes its copies once QEMU has them. */
export interface TapFds {
  readonly tap: Tap;
  readonly bridge: string;
  readonly vhostFd?: number;
}

/** What the running record keeps of a tap, to delete exactly that device later. */
export interface TapRecord {
  readonly name: string;
  readonly ifindex: number;
  readonly bridge: string;
}

/** The host side's MAC: the guest's with the first octet fe, as libvirt (a bridge never takes it as its own). */
export function hostSideMac(mac: string): string {
  return `fe${mac.slice(2)}`;
}

function tapError(nic: InterfaceDef, name: string, err: unknown): SvirtError {
  const errno = isNativeSystemError(err) ? err.code : errnoOf(err);
  if (errno === 'EBUSY' || errno === 'EEXIST') {
    const why = isTap(name) ? 'a tap of that name exists already' : 'an interface of that name exists and is not a tap';
    return new SvirtError('SVIRT_ERR_OPERATION_INVALID', `cannot create tap "${name}": ${why}`, { details: { name } });
  }
  if (errno === 'EPERM' || errno === 'EACCES') {
    return new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `cannot create tap "${name}" for a ${nic.type} interface: ${errno} (needs root)`,
      {
        details: { name, errno },
        cause: err,
      },
    );
  }
  return new SvirtError('SVIRT_ERR_HOST', `cannot create tap "${name}": ${errno ?? String(err)}`, {
    details: { name, errno },
    cause: err,
  });
}

/**
 * Makes the tap of `nic` and puts it on `bridge`, up, with the host-side MAC. On failure
 * nothing is left: the tap goes with its fd.
 */
export async function makeTap(nic: InterfaceDef, bridge: string, what: string): Promise<TapFds> {
  requireBridge(bridge, what);
  const name = nic.target ?? 'vnet%d';
  if (nic.target !== undefined && linkExists(nic.target) && !isTap(nic.target)) {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `${what}: target dev "${nic.target}" is an existing interface that is not a tap`,
    );
  }
  let tap: Tap;
  try {
    tap = tapCreate(name, nic.model === 'virtio');
  } catch (err) {
    throw tapError(nic, name, err);
  }
  let vhostFd: number | undefined;
  try {
    const mac = nic.mac === undefined ? [] : ['address', hostSideMac(nic.mac)];
    await run(['ip', 'link', 'set', 'dev', tap.name, ...mac, 'master', bridge, 'up'], `put tap ${tap.name} on bridge ${bridge}`);
    vhostFd = openVhost(nic, what);
  } catch (err) {
    closeSync(tap.fd);
    throw err;
  }
  return vhostFd === undefined ? { tap, bridge } : { tap, bridge, vhostFd };
}

/** vhost-net for a virtio NIC when the host has it; `<driver name='vhost'>` makes it required. */
function openVhost(nic: InterfaceDef, what: string): number | undefined {
  if (nic.model !== 'virtio' || nic.driver === 'qemu') return undefined;
  if (!existsSync(VHOST_NET)) {
    if (nic.driver === 'vhost')
      throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `${what}: <driver name='vhost'> but the host has no ${VHOST_NET}`);
    return undefined;
  }
  try {
    return openSync(VHOST_NET, constants.O_RDWR | constants.O_NONBLOCK);
  } catch (err) {
    if (nic.driver === 'vhost')
      throw new SvirtError('SVIRT_ERR_HOST', `${what}: cannot open ${VHOST_NET}: ${errnoOf(err) ?? String(err)}`, { cause: err });
    return undefined; // vhost is an acceleration: QEMU moves the frames itself without it
  }
}

/** Closes svirt's copies (QEMU has its own once launched). */
export function closeTapFds(t: TapFds): void {
  closeSync(t.tap.fd);
  if (t.vhostFd !== undefined) closeSync(t.vhostFd);
}

/** Deletes a recorded tap if it is still that device (ifindex); what is gone is not an error. */
export function removeTap(t: TapRecord): Promise<boolean> {
  return deleteLink(t.name, t.ifindex);
}
