/**
 * QEMU's arguments for `<graphics>` (VNC, SPICE), `<video>` and `<input>`. The definition is
 * the live one: every TCP display has its port (autoport chose it at start) and every socket
 * display its path in the guest's runtime dir. A password is never on the command line: the
 * display starts with `password=on` (nobody gets in) and svirt sets it over QMP.
 */
import { primaryVideoIndex, type GraphicsDef, type InputDef, type VideoDef } from '../domain/display-def.js';
import { GRAPHICS_PORT_MIN } from '../domain/parse-display.js';
import type { DomainDef, PciAddress } from '../domain/domain-def.js';
import { attr, childElements } from '../domain/xml-tree.js';
import { SvirtError } from '../errors.js';
import { pciProps } from './argv-machine.js';
import { qemuOptValue } from './chardev-argv.js';

function unsupported(def: DomainDef, what: string): SvirtError {
  return new SvirtError('SVIRT_ERR_XML_UNSUPPORTED', `domain '${def.name}': ${what}`);
}

/** `127.0.0.1` or `[::1]`, as QEMU's host:port syntax wants an address. */
function hostPart(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

function vncArgs(def: DomainDef, g: GraphicsDef): string[] {
  const pw = g.passwd !== undefined ? ',password=on' : '';
  switch (g.listen.type) {
    case 'socket':
      if (g.listen.socket === undefined) throw new SvirtError('SVIRT_ERR_INTERNAL', 'the VNC socket path was not placed');
      return ['-vnc', `unix:${qemuOptValue(g.listen.socket)}${pw}`];
    case 'none':
      return ['-vnc', `none${pw}`];
    case 'address':
      if (g.port === undefined) throw new SvirtError('SVIRT_ERR_INTERNAL', `no VNC port was chosen for '${def.name}'`);
      return ['-vnc', `${hostPart(g.listen.address)}:${g.port - GRAPHICS_PORT_MIN}${pw}`];
  }
}

function spiceArgs(def: DomainDef, g: GraphicsDef): string[] {
  const ticket = g.passwd !== undefined ? '' : ',disable-ticketing=on';
  switch (g.listen.type) {
    case 'socket':
      if (g.listen.socket === undefined) throw new SvirtError('SVIRT_ERR_INTERNAL', 'the SPICE socket path was not placed');
      return ['-spice', `unix=on,addr=${qemuOptValue(g.listen.socket)}${ticket}`];
    case 'none':
      throw unsupported(def, "<graphics type='spice'> with <listen type='none'> is not supported");
    case 'address':
      if (g.port === undefined) throw new SvirtError('SVIRT_ERR_INTERNAL', `no SPICE port was chosen for '${def.name}'`);
      return ['-spice', `port=${g.port},addr=${g.listen.address}${ticket}`];
  }
}

function graphicsArgs(def: DomainDef): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const g of def.graphics ?? []) {
    if (seen.has(g.type)) throw unsupported(def, `more than one <graphics type='${g.type}'> is not supported`);
    seen.add(g.type);
    out.push(...(g.type === 'vnc' ? vncArgs(def, g) : spiceArgs(def, g)));
  }
  return out;
}

/** The QEMU device of a video model: the primary one is VGA-compatible. */
function videoDevice(def: DomainDef, v: VideoDef, primary: boolean): string | undefined {
  switch (v.model) {
    case 'none':
      return undefined;
    case 'vga':
      if (primary) return 'VGA';
      break;
    case 'cirrus':
      if (primary) return 'cirrus-vga';
      break;
    case 'bochs':
      if (primary) return 'bochs-display';
      break;
    case 'qxl':
      return primary ? 'qxl-vga' : 'qxl';
    case 'virtio':
      return primary ? 'virtio-vga' : 'virtio-gpu-pci';
  }
  throw unsupported(def, `a secondary <video> of model '${v.model}' is not supported (only qxl and virtio)`);
}

/** The videos QEMU gets: the XML's, or VGA when a display has none (libvirt adds a default video). */
export function effectiveVideos(def: DomainDef): readonly VideoDef[] {
  if (def.videos && def.videos.length > 0) return def.videos;
  return (def.graphics?.length ?? 0) > 0 ? [{ model: 'vga' }] : [];
}

/** `,bus=...,addr=...` of a device at its assigned PCI address (nothing without one: QEMU places it). */
function at(def: DomainDef, address: PciAddress | undefined): string {
  return Object.entries(pciProps(def, address))
    .map(([k, v]) => `,${k}=${v}`)
    .join('');
}

function videoArgs(def: DomainDef): string[] {
  const videos = effectiveVideos(def);
  const primaryAt = primaryVideoIndex(videos);
  const out: string[] = [];
  videos.forEach((v, i) => {
    const device = videoDevice(def, v, i === primaryAt);
    if (device !== undefined) out.push('-device', `${device},id=video${i}${at(def, v.address)}`);
  });
  return out;
}

/**
 * The USB controller of USB input devices (libvirt's alias `usb`): the definition's own
 * (machine-defaults.ts adds libvirt's default and argv-machine.ts gives it to QEMU), none
 * with `model='none'`, or, for a definition that never had its defaults filled in, a
 * qemu-xhci added here.
 */
function usbController(def: DomainDef): 'none' | 'given' | 'add' {
  const usb = (def.controllers ?? []).filter((c) => c.type === 'usb');
  if (usb.length === 0) {
    const devices = childElements(def.source, 'devices')[0];
    const xml = devices ? childElements(devices, 'controller').filter((c) => attr(c, 'type') === 'usb') : [];
    return xml.some((c) => attr(c, 'model') === 'none') ? 'none' : 'add';
  }
  return usb.every((c) => c.model === 'none') ? 'none' : 'given';
}

const INPUT_DEVICES: Readonly<Record<InputDef['bus'], Readonly<Record<InputDef['type'], string | undefined>>>> = {
  usb: { tablet: 'usb-tablet', mouse: 'usb-mouse', keyboard: 'usb-kbd' },
  virtio: { tablet: 'virtio-tablet-pci', mouse: 'virtio-mouse-pci', keyboard: 'virtio-keyboard-pci' },
  // the PC's i8042 is always there
  ps2: { tablet: undefined, mouse: undefined, keyboard: undefined },
};

function inputArgs(def: DomainDef): string[] {
  const inputs = def.inputs ?? [];
  const out: string[] = [];
  if (inputs.some((i) => i.bus === 'usb')) {
    const usb = usbController(def);
    if (usb === 'none') throw unsupported(def, "a USB input device needs a USB controller (model='none' has none)");
    if (usb === 'add') out.push('-device', 'qemu-xhci,id=usb');
  }
  inputs.forEach((i, n) => {
    const device = INPUT_DEVICES[i.bus][i.type];
    if (device !== undefined) out.push('-device', `${device},id=input${n}${i.bus === 'usb' ? ',bus=usb.0' : at(def, i.address)}`);
  });
  return out;
}

/** Every display-related argument: graphics, video, input. */
export function displayArgs(def: DomainDef): string[] {
  return [...graphicsArgs(def), ...videoArgs(def), ...inputArgs(def)];
}
