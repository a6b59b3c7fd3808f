/**
 * QEMU arguments of the machine's own devices: controllers (pcie-root-port, USB, SCSI, SATA,
 * virtio-serial), `<memballoon>`, `<rng>` and pflash firmware. Every PCI device gets the
 * bus and slot its definition says (machine-defaults.ts assigned them), so the device tree
 * is the live XML's, at start, at hot-plug and at restore.
 */
import type { ControllerDef, DomainDef, PciAddress } from '../domain/domain-def.js';
import { pciAddrOption, pciBusName, pciMachine } from '../domain/pci-address.js';
import { SvirtError } from '../errors.js';

/** One inherited fd in an fdset of its own (argv.ts FdSetEntry, without the import cycle). */
export interface MachineFd {
  readonly fd: number;
  readonly set: number;
  readonly path: string;
}

/** The fds of pflash firmware: code (read-only) and vars (read-write, the guest's nvram). */
export interface FirmwareFds {
  readonly code: MachineFd;
  readonly vars?: MachineFd;
}

/** `bus=` and `addr=` of a PCI device at `a` (nothing when the definition has no address: QEMU places it). */
export function pciProps(def: DomainDef, a: PciAddress | undefined): Record<string, string> {
  const machine = pciMachine(def.os.machine);
  if (!a || !machine) return {};
  return { bus: pciBusName(machine, a.bus), addr: pciAddrOption(a), ...(a.multifunction ? { multifunction: 'on' } : {}) };
}

function device(driver: string, props: Record<string, string | number>): string[] {
  return ['-device', [driver, ...Object.entries(props).map(([k, v]) => `${k}=${v}`)].join(',')];
}

/** QEMU's id of a controller (libvirt's aliases): pci.N, usb, scsiN, sata0 (q35's built-in: ide), virtio-serialN. */
export function controllerId(def: DomainDef, c: ControllerDef): string {
  switch (c.type) {
    case 'pci':
      return pciBusName(pciMachine(def.os.machine) ?? 'i440fx', c.index);
    case 'usb':
      return c.index === 0 ? 'usb' : `usb${c.index}`;
    case 'sata':
      return pciMachine(def.os.machine) === 'q35' && c.index === 0 ? 'ide' : `sata${c.index}`;
    case 'scsi':
    case 'virtio-serial':
    case 'ide':
    case 'fdc':
      return `${c.type}${c.index}`;
  }
}

/** The bus of a SATA disk's controller 0: `ide` on q35 (ICH9's AHCI), `sata0` elsewhere. */
export function sataBus(def: DomainDef): string {
  const c = def.controllers?.find((x) => x.type === 'sata' && x.index === 0);
  return c ? controllerId(def, c) : 'sata0';
}

/** `-device` arguments of every controller, root ports first so other devices find their buses. */
export function controllerArgs(def: DomainDef): string[] {
  const list = [...(def.controllers ?? [])].sort(
    (a, b) => Number(b.model === 'pcie-root-port') - Number(a.model === 'pcie-root-port'),
  );
  const out: string[] = [];
  for (const c of list) {
    const id = controllerId(def, c);
    const at = pciProps(def, c.address);
    switch (c.type) {
      case 'pci':
        if (c.model === 'pcie-root-port')
          out.push(...device('pcie-root-port', { port: c.port ?? 0, chassis: c.chassis ?? c.index, id, ...at }));
        break; // the root bus is the machine's
      case 'usb':
        if (c.model === 'qemu-xhci') out.push(...device('qemu-xhci', { id, ...at }));
        else if (c.model === 'piix3-uhci') out.push(...device('piix3-usb-uhci', { id, ...at }));
        break; // model none: no USB
      case 'scsi':
        out.push(...device('virtio-scsi-pci', { id, ...at }));
        break;
      case 'sata':
        if (id !== 'ide') out.push(...device('ahci', { id, ...at }));
        break;
      case 'virtio-serial':
        out.push(...device('virtio-serial-pci', { id, ...at }));
        break;
      case 'ide':
      case 'fdc':
        break; // built into the machine
    }
  }
  return out;
}

/** The virtio balloon, when the definition has one. */
export function balloonArgs(def: DomainDef): string[] {
  if (def.memballoon?.model !== 'virtio') return [];
  return device('virtio-balloon-pci', { id: 'balloon0', ...pciProps(def, def.memballoon.address) });
}

/** `<rng>` devices: a random backend reads the fd svirt opened (`rngFds`, by rng index); builtin needs nothing. */
export function rngArgs(def: DomainDef, rngFds: ReadonlyMap<number, MachineFd> | undefined): string[] {
  const out: string[] = [];
  (def.rngs ?? []).forEach((r, i) => {
    const obj = `objrng${i}`;
    if (r.backend.model === 'builtin') {
      out.push('-object', `rng-builtin,id=${obj}`);
    } else {
      const fd = rngFds?.get(i);
      if (!fd) throw new SvirtError('SVIRT_ERR_INTERNAL', `no fd was opened for rng ${i} (${r.backend.path})`);
      out.push('-object', `rng-random,id=${obj},filename=/dev/fdset/${fd.set}`);
    }
    out.push(...device('virtio-rng-pci', { rng: obj, id: `rng${i}`, ...pciProps(def, r.address) }));
  });
  return out;
}

/** pflash node names (libvirt's). */
export const PFLASH = { code: 'libvirt-pflash0-format', vars: 'libvirt-pflash1-format' } as const;

/**
 * A pflash loader's `-blockdev`s over fds and the `-machine` options naming them; a secure
 * loader also turns SMM on and makes the flash secure (OVMF's secure-boot builds require it).
 */
export function firmwareArgs(def: DomainDef, fds: FirmwareFds | undefined): { machine: string[]; args: string[] } {
  const loader = def.os.loader;
  if (loader?.type !== 'pflash') return { machine: [], args: [] };
  if (!fds) throw new SvirtError('SVIRT_ERR_INTERNAL', `no fd was opened for the firmware of '${def.name}'`);
  const node = (which: 'code' | 'vars', fd: MachineFd, readonly: boolean): string[] => [
    '-blockdev',
    JSON.stringify({
      driver: 'file',
      filename: `/dev/fdset/${fd.set}`,
      'node-name': `libvirt-pflash${which === 'code' ? 0 : 1}-storage`,
      'read-only': readonly,
      'auto-read-only': false,
    }),
    '-blockdev',
    JSON.stringify({
      driver: 'raw',
      file: `libvirt-pflash${which === 'code' ? 0 : 1}-storage`,
      'node-name': PFLASH[which],
      'read-only': readonly,
    }),
  ];
  const args = node('code', fds.code, loader.readonly);
  const machine = [`pflash0=${PFLASH.code}`];
  if (fds.vars) {
    args.push(...node('vars', fds.vars, false));
    machine.push(`pflash1=${PFLASH.vars}`);
  }
  if (loader.secure) {
    machine.push('smm=on');
    args.push('-global', 'driver=cfi.pflash01,property=secure,value=on');
  }
  return { machine, args };
}
