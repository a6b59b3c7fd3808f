/**
 * `<controller>`, `<rng>`, `<memballoon>` and PCI `<address>` elements; `<os firmware>`.
 * What svirt does not run is refused here, so a definition never loses a device silently.
 */
import type { ControllerDef, ControllerType, FirmwareDef, MemballoonDef, PciAddress, RngDef } from './machine-def.js';
import type { XmlElement } from './domain-def.js';
import { invalid, oneOf, quote, single, unsupported, yesNo } from './parse-util.js';
import { attr, childElements, textOf } from './xml-tree.js';

/** Present only when the XML has them, so a definition without these devices reads as before. */
export interface MachineDevices {
  readonly controllers?: ControllerDef[];
  readonly rngs?: RngDef[];
  readonly memballoon?: MemballoonDef;
}

/** The host random sources a `<backend model='random'>` may name (libvirt's default and the blocking one). */
export const RNG_PATHS: readonly string[] = ['/dev/urandom', '/dev/random'];

const CONTROLLER_MODELS: Readonly<Record<ControllerType, readonly (string | undefined)[]>> = {
  pci: ['pci-root', 'pcie-root', 'pcie-root-port'],
  usb: [undefined, 'qemu-xhci', 'piix3-uhci', 'none'],
  scsi: [undefined, 'virtio-scsi'],
  sata: [undefined],
  'virtio-serial': [undefined],
  ide: [undefined],
  fdc: [undefined],
};

/** A number as libvirt writes addresses: `0x1f` or decimal. */
function addressNumber(el: XmlElement, name: string, max: number): number {
  const raw = attr(el, name);
  if (raw === undefined) return 0;
  const t = raw.trim();
  const n = /^0x[0-9a-f]{1,8}$/i.test(t) ? parseInt(t.slice(2), 16) : /^[0-9]{1,8}$/.test(t) ? Number(t) : NaN;
  if (!Number.isInteger(n) || n > max) throw invalid(el, `${name}=${quote(raw)} is not a number from 0 to 0x${max.toString(16)}`);
  return n;
}

/** The `<address type='pci'>` child of a device, or undefined (absent, or another address type kept as it is). */
export function parsePciAddress(device: XmlElement): PciAddress | undefined {
  const el = single(device, 'address');
  if (!el || attr(el, 'type') !== 'pci') return undefined;
  const mf = attr(el, 'multifunction');
  if (mf !== undefined && mf !== 'on' && mf !== 'off') throw invalid(el, `multifunction=${quote(mf)} must be 'on' or 'off'`);
  const a: PciAddress = {
    domain: addressNumber(el, 'domain', 0xffff),
    bus: addressNumber(el, 'bus', 0xff),
    slot: addressNumber(el, 'slot', 0x1f),
    function: addressNumber(el, 'function', 7),
  };
  return mf === 'on' ? { ...a, multifunction: true } : a;
}

function parseController(el: XmlElement): Omit<ControllerDef, 'index'> & { index?: number } {
  const type = attr(el, 'type');
  if (type === undefined) throw invalid(el, 'missing type=');
  if (!(type in CONTROLLER_MODELS)) {
    throw unsupported(
      el,
      `controller type ${quote(type)}: svirt runs pci, usb, scsi, sata, virtio-serial, ide and fdc controllers`,
    );
  }
  const t = type as ControllerType;
  const model = attr(el, 'model');
  if (!CONTROLLER_MODELS[t].includes(model)) {
    const allowed = CONTROLLER_MODELS[t].filter((m) => m !== undefined);
    throw unsupported(
      el,
      model === undefined
        ? `a ${t} controller needs model= (${allowed.join(', ')})`
        : `${t} controller model ${quote(model)}: ${allowed.length > 0 ? `svirt runs ${allowed.join(', ')}` : 'no model is taken'}`,
    );
  }
  const rawIndex = attr(el, 'index');
  let index: number | undefined;
  if (rawIndex !== undefined) {
    if (!/^[0-9]{1,3}$/.test(rawIndex.trim()) || Number(rawIndex) > 255)
      throw invalid(el, `index=${quote(rawIndex)} is not 0-255`);
    index = Number(rawIndex);
  }
  if ((model === 'pci-root' || model === 'pcie-root') && index !== undefined && index !== 0)
    throw invalid(el, `a ${model} controller has index 0`);
  const target = single(el, 'target');
  const chassis = target && attr(target, 'chassis') !== undefined ? addressNumber(target, 'chassis', 255) : undefined;
  const port = target && attr(target, 'port') !== undefined ? addressNumber(target, 'port', 255) : undefined;
  const address = parsePciAddress(el);
  return {
    type: t,
    ...(index === undefined ? {} : { index }),
    ...(model === undefined ? {} : { model }),
    ...(chassis === undefined ? {} : { chassis }),
    ...(port === undefined ? {} : { port }),
    ...(address === undefined ? {} : { address }),
  };
}

/** Controllers with libvirt's index rule: an absent index is the lowest one its type does not use yet. */
function indexControllers(els: readonly XmlElement[]): ControllerDef[] {
  const parsed = els.map((el) => ({ el, c: parseController(el) }));
  const taken = new Map<string, XmlElement>();
  const slotOf = (c: { type: string; model?: string }, index: number): string => `${c.type}/${index}`;
  for (const { el, c } of parsed) {
    if (c.index === undefined) continue;
    const k = slotOf(c, c.index);
    const other = taken.get(k);
    if (other) throw invalid(el, `a ${c.type} controller with index ${c.index} is already at line ${other.line ?? '?'}`);
    taken.set(k, el);
  }
  return parsed.map(({ el, c }) => {
    if (c.index !== undefined) return c as ControllerDef;
    let index = c.model === 'pcie-root-port' ? 1 : 0;
    while (taken.has(slotOf(c, index))) index++;
    taken.set(slotOf(c, index), el);
    return { ...c, index };
  });
}

function parseRng(el: XmlElement): RngDef {
  const model = attr(el, 'model');
  if (model !== 'virtio') {
    throw model === undefined
      ? invalid(el, 'missing model= (virtio)')
      : unsupported(el, `rng model ${quote(model)}: svirt runs virtio`);
  }
  const backend = single(el, 'backend');
  if (!backend) throw invalid(el, "missing <backend model='random'>/dev/urandom</backend> (or model='builtin')");
  const kind = attr(backend, 'model');
  const address = parsePciAddress(el);
  const base = address === undefined ? {} : { address };
  if (kind === 'builtin') return { model, backend: { model: 'builtin' }, ...base };
  if (kind !== 'random') {
    throw unsupported(backend, `rng backend ${quote(kind ?? '')}: svirt runs 'random' (${RNG_PATHS.join(' or ')}) and 'builtin'`);
  }
  const path = textOf(backend).trim() || '/dev/urandom';
  if (!RNG_PATHS.includes(path)) {
    throw unsupported(backend, `rng source ${quote(path)}: only ${RNG_PATHS.join(' and ')} may feed a guest`);
  }
  return { model, backend: { model: 'random', path }, ...base };
}

function parseMemballoon(el: XmlElement): MemballoonDef {
  const model = attr(el, 'model');
  if (model === undefined) throw invalid(el, 'missing model= (virtio or none)');
  if (model !== 'virtio' && model !== 'none')
    throw unsupported(el, `memballoon model ${quote(model)}: svirt runs virtio and none`);
  const address = parsePciAddress(el);
  if (model === 'none' && address) throw invalid(el, "a memballoon of model 'none' has no address");
  return address === undefined ? { model } : { model, address };
}

/** The machine devices of `<devices>` (the elements parse-devices.ts leaves to this module). */
export function parseMachineDevices(devices: XmlElement | undefined): MachineDevices {
  if (!devices) return {};
  const controllers = indexControllers(childElements(devices, 'controller'));
  const rngs = childElements(devices, 'rng').map(parseRng);
  const balloon = single(devices, 'memballoon');
  return {
    ...(controllers.length > 0 ? { controllers } : {}),
    ...(rngs.length > 0 ? { rngs } : {}),
    ...(balloon ? { memballoon: parseMemballoon(balloon) } : {}),
  };
}

/** `<os firmware='efi|bios'>` with `<firmware><feature enabled name/></firmware>`, or undefined. */
export function parseFirmware(os: XmlElement): FirmwareDef | undefined {
  const kind = oneOf(os, 'firmware', ['efi', 'bios'] as const);
  if (kind === undefined) return undefined;
  const fw = single(os, 'firmware');
  const features = (fw ? childElements(fw, 'feature') : []).map((f) => {
    const name = attr(f, 'name');
    if (name === undefined || !/^[a-z0-9-]{1,32}$/.test(name))
      throw invalid(f, `name=${quote(name ?? '')} is not a firmware feature`);
    const enabled = yesNo(f, 'enabled');
    if (enabled === undefined) throw invalid(f, 'missing enabled= (yes or no)');
    return { name, enabled };
  });
  return { kind, features };
}
