/**
 * `<graphics>`, `<video>` and `<input>`, as libvirt reads them (formatdomain.html#graphical-
 * framebuffers, #video-devices, #input-devices), restricted to what svirt runs confined.
 */
import type { GraphicsDef, GraphicsListenDef, InputDef, VideoDef } from './display-def.js';
import { INPUT_BUSES, INPUT_TYPES, VIDEO_MODELS } from './display-def.js';
import type { XmlElement } from './domain-def.js';
import { parsePciAddress } from './parse-machine.js';
import { checkPath, invalid, oneOf, quote, single, unsupported, yesNo } from './parse-util.js';
import { attr, childElements } from './xml-tree.js';

/** The lowest port autoport hands out (VNC display :0), as libvirt's remote_display_port_min. */
export const GRAPHICS_PORT_MIN = 5900;
export const GRAPHICS_PORT_MAX = 65535;

/** An IPv4 or IPv6 literal (QEMU is given addresses, never names to resolve). */
export function isIpLiteral(a: string): boolean {
  if (/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(a)) return a.split('.').every((o) => Number(o) <= 255);
  return /^[0-9a-fA-F:.]+$/.test(a) && a.includes(':') && a.length <= 45;
}

function parsePort(el: XmlElement, name: string): number | undefined {
  const raw = attr(el, name);
  if (raw === undefined || raw.trim() === '-1' || raw.trim() === '0') return undefined;
  if (!/^\d{1,5}$/.test(raw.trim())) throw invalid(el, `${name}=${quote(raw)} is not a port number`);
  const n = Number(raw.trim());
  if (n < GRAPHICS_PORT_MIN || n > GRAPHICS_PORT_MAX) {
    throw invalid(el, `${name}=${n}: a display port is between ${GRAPHICS_PORT_MIN} and ${GRAPHICS_PORT_MAX}`);
  }
  return n;
}

function checkAddress(el: XmlElement, address: string): string {
  if (!isIpLiteral(address)) throw invalid(el, `listen address ${quote(address)} is not an IPv4 or IPv6 address`);
  return address;
}

function parseListen(el: XmlElement): { listen: GraphicsListenDef; given: boolean } {
  const listens = childElements(el, 'listen');
  if (listens.length > 1) throw unsupported(listens[1] ?? el, 'more than one <listen> per display is not supported');
  const attrAddress = attr(el, 'listen');
  const oldSocket = attr(el, 'socket');
  const l = listens[0];
  if (l) {
    const type = attr(l, 'type') ?? 'address';
    if (type === 'address') {
      const address = attr(l, 'address') ?? attrAddress;
      if (attrAddress !== undefined && address !== attrAddress) {
        throw invalid(l, `address ${quote(address ?? '')} differs from the listen=${quote(attrAddress)} of <graphics>`);
      }
      if (address === undefined || address === '') return { listen: { type: 'address', address: '127.0.0.1' }, given: false };
      return { listen: { type: 'address', address: checkAddress(l, address) }, given: true };
    }
    if (type === 'socket') {
      const socket = attr(l, 'socket') ?? oldSocket;
      if (socket === undefined || socket === '') return { listen: { type: 'socket' }, given: false };
      checkPath(socket, 'a display socket', l);
      return { listen: { type: 'socket', socket }, given: true };
    }
    if (type === 'none') return { listen: { type: 'none' }, given: true };
    throw unsupported(l, `<listen type=${quote(type)}>: only address, socket and none are supported`);
  }
  if (oldSocket !== undefined && oldSocket !== '') {
    checkPath(oldSocket, 'a display socket', el);
    return { listen: { type: 'socket', socket: oldSocket }, given: true };
  }
  if (attrAddress !== undefined && attrAddress !== '') {
    return { listen: { type: 'address', address: checkAddress(el, attrAddress) }, given: true };
  }
  return { listen: { type: 'address', address: '127.0.0.1' }, given: false };
}

export function parseGraphics(el: XmlElement): GraphicsDef {
  const type = attr(el, 'type');
  if (type !== 'vnc' && type !== 'spice') {
    throw unsupported(el, `graphics type ${quote(type ?? '')}: only vnc and spice are supported`, { value: type });
  }
  const port = parsePort(el, 'port');
  const autoport = yesNo(el, 'autoport') ?? port === undefined;
  const { listen, given } = parseListen(el);
  const passwd = attr(el, 'passwd');
  if (passwd !== undefined && /[\0\n\r]/.test(passwd)) throw invalid(el, 'passwd= must not contain NUL or newlines');
  return {
    type,
    ...(port === undefined || autoport ? (port === undefined ? {} : { port }) : { port }),
    autoport,
    listen,
    listenGiven: given,
    ...(passwd === undefined ? {} : { passwd }),
  };
}

export function parseVideo(el: XmlElement): VideoDef {
  const address = parsePciAddress(el);
  const at = address === undefined ? {} : { address };
  const model = single(el, 'model');
  if (!model) return { model: 'vga', ...at };
  const type = attr(model, 'type');
  if (type === undefined) throw invalid(model, 'missing type=');
  if (!(VIDEO_MODELS as readonly string[]).includes(type)) {
    throw unsupported(model, `video model ${quote(type)}: only ${VIDEO_MODELS.join(', ')} are supported`, { value: type });
  }
  if (type === 'none' && address) throw invalid(el, "a video of model 'none' is no device and takes no PCI address");
  const primary = yesNo(model, 'primary');
  return { model: type as VideoDef['model'], ...(primary === undefined ? {} : { primary }), ...at };
}

export function parseInput(el: XmlElement): InputDef {
  const type = attr(el, 'type');
  if (type === undefined) throw invalid(el, 'missing type=');
  if (!(INPUT_TYPES as readonly string[]).includes(type)) {
    throw unsupported(el, `input type ${quote(type)}: only ${INPUT_TYPES.join(', ')} are supported`, { value: type });
  }
  // libvirt: a tablet defaults to usb, mouse and keyboard to ps2 on x86
  const bus = oneOf(el, 'bus', INPUT_BUSES) ?? (type === 'tablet' ? 'usb' : 'ps2');
  if (type === 'tablet' && bus === 'ps2') throw invalid(el, "a tablet cannot be on bus 'ps2'");
  const address = parsePciAddress(el);
  if (address && bus !== 'virtio') throw invalid(el, `a ${bus} input is not a PCI device and takes no PCI address`);
  return { type: type as InputDef['type'], bus, ...(address === undefined ? {} : { address }) };
}
