/**
 * PCI address assignment, libvirt's way, as a small generic module: give it the machine
 * family, the controllers a definition has and the PCI devices it needs placed; get back an
 * address for every device and the controllers that must exist for them.
 *
 * - **q35** (`pcie-root`): every endpoint sits alone in slot 0 of its own `pcie-root-port`
 *   (what libvirt does, so each can be hot-unplugged); root ports fill the functions of
 *   pcie.0 slots from 2 on (slot 2 function 0 `multifunction='on'`, 2.1, ... 2.7, then slot
 *   3), skipping slot 0 (host bridge), slot 1 (kept for the primary video device) and slot
 *   0x1f (ICH9 LPC, SATA, SMBus). Then root ports are added until `freeRootPorts` stay free
 *   for hot-plug (a root port cannot itself be hot-plugged).
 * - **i440fx** (`pci-root`): endpoints take slots 3–31 of pci.0 (slot 0 host bridge, slot 1
 *   PIIX3, slot 2 kept for the primary video device). pci.0 itself supports hot-plug.
 *
 * Given addresses are honoured and checked (a bus that has no controller, a root port slot
 * other than 0, two devices at one address are errors). With `frozen` (a hot-plug into a
 * running guest) no controller may be added: the device takes a free root port or slot, or
 * the call fails naming what to add to the definition.
 *
 * Callers: machine-defaults.ts (define and start: controllers, disks, balloon, rng, NICs,
 * shared folders, videos, virtio inputs) and the hot-plug paths (lifecycle/device-address.ts,
 * nic-plug.ts). Other device families plug in by adding
 * `PciRequest`s (machine-defaults.ts `pciRequests`).
 */
import { SvirtError } from '../errors.js';
import type { ControllerDef, PciAddress } from './machine-def.js';

export type PciMachine = 'q35' | 'i440fx';

/** One PCI device to place. */
export interface PciRequest {
  /** The caller's key for the device (`disk:vda`, `rng0`, `controller:scsi0`...), used in messages. */
  readonly id: string;
  /** An address the definition gives: honoured, or an error when it cannot be. */
  readonly address?: PciAddress;
  /** The device must be hot-unpluggable (a hot-plug): on q35 it cannot sit on pcie.0. */
  readonly hotplug?: boolean;
  /**
   * Where the device goes when that slot is free (the primary video: slot 2 of pci.0 on
   * i440fx, slot 1 of pcie.0 on q35, as libvirt puts it); else it is placed like any other.
   */
  readonly preferred?: PciAddress;
}

export interface PciAssignOptions {
  /** q35: root ports kept free for hot-plug (default `DEFAULT_FREE_ROOT_PORTS`). */
  readonly freeRootPorts?: number;
  /** A running guest: controllers cannot be added, only free ports and slots used. */
  readonly frozen?: boolean;
}

export interface PciPlan {
  /** The address of every request, by id. */
  readonly addresses: ReadonlyMap<string, PciAddress>;
  /** Every controller: the given ones (addresses, chassis and port filled in), then new root ports. */
  readonly controllers: readonly ControllerDef[];
}

/**
 * Free pcie-root-ports a q35 guest gets for hot-plug. Four: enough for a few disks and NICs
 * plugged at run time, while each port costs a bus number and a share of the 64 KiB I/O
 * space (QEMU reserves 4 KiB of it per port). More come from `<controller type='pci'
 * model='pcie-root-port'/>` elements in the definition, as virt-install writes them.
 */
export const DEFAULT_FREE_ROOT_PORTS = 4;

const SLOTS = 32;
const FUNCTIONS = 8;
/** Slots of bus 0 never given to a device (q35: host bridge, ICH9 at 0x1f; i440fx: host bridge, PIIX3). */
const BUILT_IN: Readonly<Record<PciMachine, readonly number[]>> = { q35: [0, 0x1f], i440fx: [0, 1] };
/** Slots of bus 0 auto-assignment skips, but a given address may take (the primary video device). */
const KEPT: Readonly<Record<PciMachine, readonly number[]>> = { q35: [1], i440fx: [2] };

/** The machine family of a machine type name, or undefined when svirt does not place PCI devices on it. */
export function pciMachine(machine: string | undefined): PciMachine | undefined {
  if (machine === undefined || machine === 'pc' || /^pc-(i440fx-)?\d/.test(machine) || machine.startsWith('pc-i440fx'))
    return 'i440fx';
  if (machine === 'q35' || machine.startsWith('pc-q35')) return 'q35';
  return undefined;
}

/** The QEMU bus name of PCI bus `index` (libvirt's aliases: pcie.0 or pci.0, then pci.N). */
export function pciBusName(machine: PciMachine, index: number): string {
  return index === 0 ? (machine === 'q35' ? 'pcie.0' : 'pci.0') : `pci.${index}`;
}

/** `addr=` of a device: `0x3`, or `0x2.0x1` for a function other than 0. */
export function pciAddrOption(a: PciAddress): string {
  return a.function === 0 ? `0x${a.slot.toString(16)}` : `0x${a.slot.toString(16)}.0x${a.function.toString(16)}`;
}

export function formatPciAddress(a: PciAddress): string {
  const h = (n: number, w: number): string => n.toString(16).padStart(w, '0');
  return `${h(a.domain, 4)}:${h(a.bus, 2)}:${h(a.slot, 2)}.${a.function}`;
}

export function isRootPort(c: ControllerDef): boolean {
  return c.type === 'pci' && c.model === 'pcie-root-port';
}

function fail(message: string): SvirtError {
  return new SvirtError('SVIRT_ERR_XML_INVALID', `PCI addresses: ${message}`);
}

const key = (bus: number, slot: number, fn: number): string => `${bus}:${slot}.${fn}`;

/** Places every request; see the module comment for the rules. */
export function assignPci(
  machine: PciMachine,
  given: readonly ControllerDef[],
  requests: readonly PciRequest[],
  options: PciAssignOptions = {},
): PciPlan {
  const used = new Map<string, string>();
  const controllers = [...given];
  const pciIndexes = new Map<number, ControllerDef>();
  for (const c of controllers) if (c.type === 'pci') pciIndexes.set(c.index, c);

  const take = (a: PciAddress, owner: string): void => {
    if (a.domain !== 0) throw fail(`${owner}: PCI domain ${a.domain} does not exist (only domain 0)`);
    const bus = pciIndexes.get(a.bus);
    if (!bus) throw fail(`${owner}: bus 0x${a.bus.toString(16)} has no PCI controller with that index`);
    if (a.bus === 0 && BUILT_IN[machine].includes(a.slot))
      throw fail(`${owner}: slot 0x${a.slot.toString(16)} of bus 0 belongs to the machine's built-in devices`);
    if (isRootPort(bus) && a.slot !== 0) throw fail(`${owner}: a pcie-root-port has only slot 0, not 0x${a.slot.toString(16)}`);
    if (a.slot >= SLOTS || a.function >= FUNCTIONS) throw fail(`${owner}: ${formatPciAddress(a)} is not a PCI address`);
    const k = key(a.bus, a.slot, a.function);
    const other = used.get(k);
    if (other !== undefined) throw fail(`${owner} and ${other} both use ${formatPciAddress(a)}`);
    used.set(k, owner);
  };

  // Given addresses first: the definition's word is kept.
  // A given address on a bus no controller provides gets a root port of that index (q35), as
  // libvirt adds the controllers a definition's addresses refer to.
  if (machine === 'q35' && !options.frozen) {
    const wanted = [...controllers.map((c) => c.address), ...requests.map((r) => r.address)];
    for (const a of wanted) {
      if (!a || a.bus === 0 || pciIndexes.has(a.bus)) continue;
      const port: ControllerDef = { type: 'pci', index: a.bus, model: 'pcie-root-port' };
      controllers.push(port);
      pciIndexes.set(a.bus, port);
    }
  }
  // PCI controllers (root ports) are placed here; other controllers come as requests, and
  // built-in ones (q35's SATA, PIIX3's USB) sit in the machine's own slots.
  for (const c of controllers) if (c.address && c.type === 'pci') take(c.address, controllerName(c));
  for (const r of requests) {
    if (!r.address) continue;
    if (r.hotplug && machine === 'q35' && r.address.bus === 0) {
      throw fail(`${r.id}: bus pcie.0 does not support hot-plug; give it a pcie-root-port's bus or no address`);
    }
    take(r.address, r.id);
  }

  /** The next free function on bus 0 for a root port (q35) or slot (i440fx), in libvirt's order. */
  const nextOnRoot = (aggregate: boolean): PciAddress | undefined => {
    for (let slot = 0; slot < SLOTS; slot++) {
      if (BUILT_IN[machine].includes(slot) || KEPT[machine].includes(slot)) continue;
      if (!aggregate) {
        if (![...Array(FUNCTIONS).keys()].some((f) => used.has(key(0, slot, f)))) return pci(0, slot, 0);
        continue;
      }
      // Root ports share a slot only with root ports: skip a slot any other device uses.
      const owners = [...Array(FUNCTIONS).keys()].map((f) => used.get(key(0, slot, f)));
      if (owners.some((o) => o !== undefined && !o.startsWith('pcie-root-port'))) continue;
      const f = owners.findIndex((o) => o === undefined);
      if (f !== -1) return pci(0, slot, f);
    }
    return undefined;
  };

  const nextIndex = (): number => Math.max(0, ...pciIndexes.keys()) + 1;
  const addRootPort = (why: string): ControllerDef => {
    if (options.frozen) {
      throw new SvirtError(
        'SVIRT_ERR_OPERATION_INVALID',
        `no free pcie-root-port for ${why}: a running q35 guest cannot get a new one; add <controller type='pci' model='pcie-root-port'/> to its definition`,
      );
    }
    const index = nextIndex();
    const address = nextOnRoot(true);
    if (!address) throw fail(`no room on pcie.0 for another pcie-root-port (for ${why})`);
    const port: ControllerDef = { type: 'pci', index, model: 'pcie-root-port', address };
    used.set(key(0, address.slot, address.function), controllerName(port));
    pciIndexes.set(index, port);
    controllers.push(port);
    return port;
  };

  if (machine === 'q35') {
    // Given root ports without an address get one on pcie.0.
    for (const [i, c] of controllers.entries()) {
      if (!isRootPort(c) || c.address) continue;
      const address = nextOnRoot(true);
      if (!address) throw fail(`no room on pcie.0 for ${controllerName(c)}`);
      used.set(key(0, address.slot, address.function), controllerName(c));
      controllers[i] = { ...c, address };
      pciIndexes.set(c.index, controllers[i] as ControllerDef);
    }
  }

  const addresses = new Map<string, PciAddress>();
  // A preferred slot is the device's when no function of it is used (libvirt's check for the primary video).
  for (const r of requests) {
    const p = r.preferred;
    if (r.address || !p || !pciIndexes.has(p.bus)) continue;
    if ([...Array(FUNCTIONS).keys()].some((f) => used.has(key(p.bus, p.slot, f)))) continue;
    used.set(key(p.bus, p.slot, p.function), r.id);
    addresses.set(r.id, p);
  }
  const busy = (index: number): boolean => used.has(key(index, 0, 0));
  for (const r of requests) {
    if (r.address) {
      addresses.set(r.id, r.address);
      continue;
    }
    if (addresses.has(r.id)) continue;
    let a: PciAddress | undefined;
    if (machine === 'q35') {
      const free = controllers.filter((c) => isRootPort(c) && !busy(c.index)).sort((x, y) => x.index - y.index)[0];
      a = pci((free ?? addRootPort(r.id)).index, 0, 0);
    } else {
      a = nextOnRoot(false);
      if (!a) {
        throw new SvirtError(
          options.frozen ? 'SVIRT_ERR_OPERATION_INVALID' : 'SVIRT_ERR_XML_INVALID',
          `PCI addresses: no free slot on pci.0 for ${r.id} (pci-bridge is not supported)`,
        );
      }
    }
    used.set(key(a.bus, a.slot, a.function), r.id);
    addresses.set(r.id, a);
  }

  if (machine === 'q35' && !options.frozen) {
    const want = options.freeRootPorts ?? DEFAULT_FREE_ROOT_PORTS;
    let free = controllers.filter((c) => isRootPort(c) && !busy(c.index)).length;
    for (; free < want; free++) addRootPort('hot-plug');
  }
  return { addresses, controllers: finishRootPorts(controllers, used) };
}

function pci(bus: number, slot: number, fn: number): PciAddress {
  return { domain: 0, bus, slot, function: fn };
}

function controllerName(c: ControllerDef): string {
  return `${c.model ?? c.type} ${c.index}`;
}

/** Root ports get libvirt's chassis (= index) and port (= slot << 3 | function); function 0 of a shared slot is multifunction. */
function finishRootPorts(controllers: readonly ControllerDef[], used: ReadonlyMap<string, string>): ControllerDef[] {
  return controllers.map((c) => {
    if (!isRootPort(c) || !c.address) return c;
    const a = c.address;
    const shared =
      a.bus === 0 && a.function === 0 && [...Array(FUNCTIONS).keys()].some((f) => f > 0 && used.has(key(0, a.slot, f)));
    const address: PciAddress = shared && !a.multifunction ? { ...a, multifunction: true } : a;
    return {
      ...c,
      chassis: c.chassis ?? c.index,
      port: c.port ?? (a.slot << 3) | a.function,
      address,
    };
  });
}
