/**
 * `<interface>`: the NIC types svirt runs (docs/network.md). Every other type, and every
 * child element that would change what the NIC does (a filter, a VLAN, bandwidth), is
 * refused at parse time rather than dropped.
 */

import type { PciAddress } from './machine-def.js';

/** `user` (passt, or QEMU's slirp), `bridge` (a tap on a host bridge), `network` (a tap on an svirt network's bridge). */
export type InterfaceType = 'user' | 'bridge' | 'network';

/** The guest-visible NIC models svirt maps to a QEMU device. */
export type NicModel = 'virtio' | 'e1000' | 'e1000e' | 'rtl8139';

/** `<portForward><range start= end= to= exclude=/>`: host ports start..end to guest ports to.. (or excluded). */
export interface PortRangeDef {
  readonly start: number;
  readonly end?: number;
  readonly to?: number;
  readonly exclude?: boolean;
}

/** `<portForward proto= address= dev=>`: host ports forwarded into the guest by passt. */
export interface PortForwardDef {
  readonly proto: 'tcp' | 'udp';
  /** The host address passt listens on; absent means every address. */
  readonly address?: string;
  /** The host interface passt binds to. */
  readonly dev?: string;
  readonly ranges: readonly PortRangeDef[];
}

export interface InterfaceDef {
  readonly type: InterfaceType;
  /** `52:54:00:...` lower case; assigned at define when absent (src/network/mac.ts). */
  readonly mac?: string;
  /** Absent: QEMU's default NIC for the machine, rtl8139 on x86 as libvirt. */
  readonly model?: NicModel;
  /** `<source bridge=...>` (bridge) or `<source network=...>` (network). */
  readonly source?: string;
  /** The host tap's name; generated (`vnetN`) at start when absent, shown in the live XML. */
  readonly target?: string;
  /**
   * `<backend type=...>` of a user NIC: `passt`, or `default` (QEMU's built-in slirp). Absent:
   * passt when it is installed, else slirp (docs/network.md).
   */
  readonly backend?: 'passt' | 'default';
  /** `<driver name=...>`: `qemu` turns vhost-net off; absent or `vhost`: vhost-net when the host has it. */
  readonly driver?: 'vhost' | 'qemu';
  readonly portForwards: readonly PortForwardDef[];
  /** `<alias name=...>`: QEMU's device id (`net0`... when not given; a user alias starts with `ua-`). */
  readonly alias?: string;
  /** `<link state=...>`: absent means up. */
  readonly link?: 'up' | 'down';
  /** `<address type='pci'>`: given, or assigned with the other PCI devices (machine-defaults.ts). */
  readonly address?: PciAddress;
}
