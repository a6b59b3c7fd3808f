/**
 * libvirt's implicit devices and PCI addresses, applied to a definition at define and again
 * at start (idempotent: a complete definition comes back unchanged):
 *
 * - the PCI root (`pcie-root` on q35, `pci-root` on i440fx); the built-in IDE controller of
 *   i440fx; a USB controller when none is given (q35: qemu-xhci, i440fx: piix3-uhci, as
 *   libvirt picks); a SCSI controller (virtio-scsi) when a disk is on bus scsi; a SATA
 *   controller when a disk is on bus sata (q35: the built-in ICH9 AHCI at 00:1f.2);
 * - a virtio `<memballoon>` when the definition has none (libvirt's default on x86), and a
 *   VGA `<video>` when a display has none;
 * - a PCI address for every PCI device without one (pci-address.ts), and on q35 the root
 *   ports they need plus free ones for hot-plug.
 *
 * Other device families join by adding their devices to `pciRequests` and `withAddresses`.
 */
import { SvirtError } from '../errors.js';
import { primaryVideoIndex } from './display-def.js';
import type { ControllerDef, ControllerType, DiskDef, DomainDef, PciAddress } from './domain-def.js';
import { assignPci, pciMachine, type PciMachine, type PciPlan, type PciRequest } from './pci-address.js';

/** The order controller types are written in (libvirt's dumpxml shows them grouped, each by index). */
const TYPE_ORDER: readonly ControllerType[] = ['usb', 'pci', 'ide', 'fdc', 'sata', 'scsi', 'virtio-serial'];

/** Built-in controllers: where the machine has them (not PCI requests: nothing to place). */
const BUILT_IN: Readonly<Record<PciMachine, Partial<Record<ControllerType, PciAddress>>>> = {
  q35: { sata: { domain: 0, bus: 0, slot: 0x1f, function: 2 } },
  i440fx: { ide: { domain: 0, bus: 0, slot: 1, function: 1 } },
};
const PIIX3_UHCI: PciAddress = { domain: 0, bus: 0, slot: 1, function: 2 };

function invalid(def: DomainDef, reason: string): SvirtError {
  return new SvirtError('SVIRT_ERR_XML_INVALID', `domain '${def.name}': ${reason}`);
}

/** Whether a disk is a PCI device of its own (virtio-blk). */
export function isPciDisk(d: DiskDef): boolean {
  return d.target.bus === 'virtio' && d.device === 'disk';
}

/** Whether a controller is a PCI device svirt places (the root, root ports and built-in ones are not). */
function isPciController(machine: PciMachine, c: ControllerDef): boolean {
  if (c.type === 'pci' || c.type === 'fdc' || c.type === 'ide') return false;
  if (c.type === 'usb') return c.model === 'qemu-xhci';
  if (c.type === 'sata') return !(machine === 'q35' && c.index === 0);
  return true; // scsi (virtio-scsi), virtio-serial
}

export function controllerKey(c: Pick<ControllerDef, 'type' | 'index'>): string {
  return `controller:${c.type}${c.index}`;
}

/** Where the machine puts its primary video (libvirt: the slot QEMU itself gives the first VGA). */
const PRIMARY_VIDEO: Readonly<Record<PciMachine, PciAddress>> = {
  q35: { domain: 0, bus: 0, slot: 1, function: 0 },
  i440fx: { domain: 0, bus: 0, slot: 2, function: 0 },
};

/**
 * Every PCI device of a definition as an assigner request: controllers, disks, balloon, rngs,
 * NICs (svirt's order since its first release, kept so defined guests keep their addresses),
 * then shared folders (vhost-user-fs), videos and virtio inputs, in libvirt's relative order.
 * The primary video asks for the slot libvirt gives it. A TPM is no PCI device on x86
 * (tpm-tis sits on ISA, tpm-crb on the system bus), nor are USB and PS/2 inputs.
 */
export function pciRequests(def: DomainDef, machine: PciMachine): PciRequest[] {
  const out: PciRequest[] = [];
  const add = (id: string, address: PciAddress | undefined, preferred?: PciAddress): void => {
    out.push({ id, ...(address === undefined ? {} : { address }), ...(preferred === undefined ? {} : { preferred }) });
  };
  for (const c of def.controllers ?? []) if (isPciController(machine, c)) add(controllerKey(c), c.address);
  for (const d of def.disks) if (isPciDisk(d)) add(`disk:${d.target.dev}`, d.address);
  if (def.memballoon?.model === 'virtio') add('memballoon', def.memballoon.address);
  (def.rngs ?? []).forEach((r, i) => add(`rng${i}`, r.address));
  def.interfaces.forEach((n, i) => add(`net:${i}`, n.address));
  (def.filesystems ?? []).forEach((f, i) => add(`fs${i}`, f.address));
  const videos = def.videos ?? [];
  const primary = primaryVideoIndex(videos);
  videos.forEach((v, i) => {
    if (v.model !== 'none') add(`video${i}`, v.address, i === primary ? PRIMARY_VIDEO[machine] : undefined);
  });
  (def.inputs ?? []).forEach((n, i) => {
    if (n.bus === 'virtio') add(`input${i}`, n.address);
  });
  return out;
}

/** Writes a plan's addresses and controllers back into the definition. */
export function withAddresses(def: DomainDef, plan: PciPlan): DomainDef {
  const at = (id: string): PciAddress | undefined => plan.addresses.get(id);
  const place = <T extends { readonly address?: PciAddress }>(x: T, id: string): T => {
    const a = at(id);
    return a === undefined ? x : { ...x, address: a };
  };
  return {
    ...def,
    controllers: sortControllers(plan.controllers.map((c) => place(c, controllerKey(c)))),
    disks: def.disks.map((d) => place(d, `disk:${d.target.dev}`)),
    ...(def.memballoon ? { memballoon: place(def.memballoon, 'memballoon') } : {}),
    ...(def.rngs ? { rngs: def.rngs.map((r, i) => place(r, `rng${i}`)) } : {}),
    interfaces: def.interfaces.map((n, i) => place(n, `net:${i}`)),
    ...(def.filesystems ? { filesystems: def.filesystems.map((f, i) => place(f, `fs${i}`)) } : {}),
    ...(def.videos ? { videos: def.videos.map((v, i) => place(v, `video${i}`)) } : {}),
    ...(def.inputs ? { inputs: def.inputs.map((n, i) => place(n, `input${i}`)) } : {}),
  };
}

function sortControllers(list: readonly ControllerDef[]): ControllerDef[] {
  const rank = (t: ControllerType): number => TYPE_ORDER.indexOf(t);
  return [...list].sort((a, b) => rank(a.type) - rank(b.type) || a.index - b.index);
}

/** The implicit controllers a definition's machine and disks call for, with default models filled in. */
function implicitControllers(def: DomainDef, machine: PciMachine): ControllerDef[] {
  const given = def.controllers ?? [];
  for (const c of given) {
    if (machine === 'q35' && c.type === 'pci' && c.model === 'pci-root')
      throw invalid(def, 'a q35 machine has a pcie-root, not a pci-root');
    if (machine === 'i440fx' && c.type === 'pci' && c.model !== 'pci-root')
      throw invalid(def, `${c.model ?? 'pci'} controllers need a q35 machine (this one is i440fx)`);
    if (machine === 'q35' && c.type === 'ide') throw invalid(def, 'IDE controllers are unsupported on q35 machines; use sata');
  }
  const out = given.map((c): ControllerDef => {
    if (c.type === 'usb' && c.model === undefined) return { ...c, model: machine === 'q35' ? 'qemu-xhci' : 'piix3-uhci' };
    if (c.type === 'scsi' && c.model === undefined) return { ...c, model: 'virtio-scsi' };
    return c;
  });
  const has = (type: ControllerType, index = 0): boolean => out.some((c) => c.type === type && c.index === index);
  if (!has('pci')) out.push({ type: 'pci', index: 0, model: machine === 'q35' ? 'pcie-root' : 'pci-root' });
  if (!out.some((c) => c.type === 'usb')) {
    out.push({ type: 'usb', index: 0, model: machine === 'q35' ? 'qemu-xhci' : 'piix3-uhci' });
  }
  const buses = new Set(def.disks.map((d) => d.target.bus));
  if (machine === 'q35' && buses.has('ide')) throw invalid(def, "IDE disks are unsupported on q35 machines; use bus='sata'");
  if (machine === 'i440fx' && !has('ide')) out.push({ type: 'ide', index: 0 });
  if (buses.has('scsi') && !has('scsi')) out.push({ type: 'scsi', index: 0, model: 'virtio-scsi' });
  // Channels and virtio consoles sit on virtio-serial controller 0 (a console beside a serial port is a virtio one).
  const hasSerial = def.chardevs.some((c) => c.element === 'serial');
  const virtioSerial = def.chardevs.some(
    (c) => c.element === 'channel' || (c.element === 'console' && (c.targetType === 'virtio' || hasSerial)),
  );
  if (virtioSerial && !has('virtio-serial')) out.push({ type: 'virtio-serial', index: 0 });
  if (buses.has('sata') && !has('sata')) out.push({ type: 'sata', index: 0 });
  return out.map((c) => {
    const fixed =
      c.type === 'usb' && c.model === 'piix3-uhci' ? PIIX3_UHCI : c.index === 0 ? BUILT_IN[machine][c.type] : undefined;
    if (!fixed) return c;
    if (c.address && (c.address.bus !== fixed.bus || c.address.slot !== fixed.slot || c.address.function !== fixed.function))
      throw invalid(
        def,
        `the built-in ${c.model ?? c.type} controller sits at slot 0x${fixed.slot.toString(16)} function ${fixed.function}`,
      );
    return { ...c, address: fixed };
  });
}

export interface CompleteOptions {
  /** q35 root ports kept free for hot-plug (default pci-address.ts DEFAULT_FREE_ROOT_PORTS). */
  readonly freeRootPorts?: number;
}

/**
 * The definition with libvirt's implicit devices and every PCI address filled in. A machine
 * svirt does not place devices on (microvm, isapc) is returned as it is, with the balloon default.
 */
export function completeMachine(def: DomainDef, options: CompleteOptions = {}): DomainDef {
  // libvirt's implicit devices: a virtio balloon, and a VGA for a display that names no video.
  const display = (def.graphics?.length ?? 0) > 0 && (def.videos?.length ?? 0) === 0;
  const withVideo: DomainDef = display ? { ...def, videos: [{ model: 'vga' }] } : def;
  const withBalloon: DomainDef = withVideo.memballoon ? withVideo : { ...withVideo, memballoon: { model: 'virtio' } };
  const machine = pciMachine(def.os.machine);
  if (!machine) return withBalloon;
  for (const d of def.disks) {
    if (d.address && !isPciDisk(d)) {
      throw invalid(def, `disk ${d.target.dev} on bus '${d.target.bus}' is not a PCI device and takes no PCI address`);
    }
  }
  const controllers = implicitControllers(withBalloon, machine);
  const full: DomainDef = { ...withBalloon, controllers };
  const plan = assignPci(machine, controllers, pciRequests(full, machine), options);
  return withAddresses(full, plan);
}

/**
 * The address of a device being hot-plugged into a running guest: a free root port (q35) or
 * slot (i440fx), never a new controller. `id` and `address` describe the new device.
 */
export function hotplugAddress(live: DomainDef, id: string, address: PciAddress | undefined): PciAddress {
  const machine = pciMachine(live.os.machine);
  if (!machine)
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `domain '${live.name}': machine '${live.os.machine ?? ''}' has no PCI hot-plug`,
    );
  const request: PciRequest = address === undefined ? { id, hotplug: true } : { id, hotplug: true, address };
  // A live device without an address was placed by QEMU itself (a guest started by an older
  // svirt): its slot is not known here, and it must not take a free port in the plan.
  const placed = pciRequests(live, machine).filter((r) => r.address !== undefined);
  const plan = assignPci(machine, live.controllers ?? [], [...placed, request], { frozen: true });
  const a = plan.addresses.get(id);
  if (!a) throw new SvirtError('SVIRT_ERR_INTERNAL', `no PCI address was assigned to ${id}`);
  return a;
}
