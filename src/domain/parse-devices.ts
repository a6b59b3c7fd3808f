// Long file: one reader per device kind (disks, chardevs, NICs, display) over one <devices> walk; each is short.
/**
 * `<devices>`: disks, serial/console/channel chardevs, graphics, video and input are
 * modelled; every other device is kept in the tree and listed as ignored.
 */
import type { GraphicsDef, InputDef, VideoDef } from './display-def.js';
import type {
  BackingStoreDef,
  ChardevDef,
  ChardevLogDef,
  DiskDef,
  DiskFormat,
  IgnoredDeviceDef,
  XmlElement,
} from './domain-def.js';
import type { InterfaceDef } from './interface-def.js';
import { parseGraphics, parseInput, parseVideo } from './parse-display.js';
import { parseInterface } from './parse-interface.js';
import { parsePciAddress } from './parse-machine.js';
import { addHelperDevice, type HelperDevicesDefs } from './helper-devices.js';
import { parseDeviceSeclabels } from './parse-seclabels.js';
import { checkPath, invalid, oneOf, parseUnsigned, quote, single, singleText, unsupported } from './parse-util.js';
import { attr, childElements } from './xml-tree.js';

export interface ParsedDevices extends HelperDevicesDefs {
  readonly emulator?: string;
  readonly disks: DiskDef[];
  readonly chardevs: ChardevDef[];
  readonly interfaces: InterfaceDef[];
  readonly graphics: GraphicsDef[];
  readonly videos: VideoDef[];
  readonly inputs: InputDef[];
  readonly ignoredDevices: IgnoredDeviceDef[];
}

/** Target names libvirt derives a bus from (fda, hdc, sda, vdb, xvda, ubda). */
export const DISK_TARGET = /^(fd|hd|sd|vd|xvd|ubd)[a-z]{1,8}$/;

const DISK_BUSES = ['ide', 'scsi', 'virtio', 'xen', 'usb', 'uml', 'sata', 'sd', 'fdc'] as const;
const FORMATS: readonly DiskFormat[] = ['raw', 'qcow2'];

/** libvirt's default bus for a target name (floppies always sit on fdc). */
function defaultBus(dev: string, device: DiskDef['device']): string {
  if (device === 'floppy' || dev.startsWith('fd')) return 'fdc';
  if (dev.startsWith('vd')) return 'virtio';
  if (dev.startsWith('sd')) return 'scsi';
  if (dev.startsWith('xvd')) return 'xen';
  if (dev.startsWith('ubd')) return 'uml';
  return 'ide';
}

function diskFormat(el: XmlElement, value: string | undefined, what: string): DiskFormat {
  if (value === undefined) return 'raw';
  if ((FORMATS as readonly string[]).includes(value)) return value as DiskFormat;
  throw unsupported(el, `${what} format ${quote(value)}: only raw and qcow2 are supported`, { value });
}

/** Source path attribute of a file or block source. */
function sourceAttr(type: 'file' | 'block'): 'file' | 'dev' {
  return type === 'file' ? 'file' : 'dev';
}

function parseBacking(parent: XmlElement, parentFormat: DiskFormat, disk: string): BackingStoreDef | undefined {
  const bs = single(parent, 'backingStore');
  if (!bs) return undefined;
  const source = single(bs, 'source');
  if (!source) return undefined; // an empty <backingStore/> declares the end of the chain
  if (parentFormat !== 'qcow2') {
    throw invalid(bs, `disk '${disk}': a ${parentFormat} image has no backing file; backing chains are only declared for qcow2`);
  }
  const rawType = attr(bs, 'type');
  if (rawType === undefined) throw invalid(bs, `disk '${disk}': missing type= (file or block)`);
  if (rawType !== 'file' && rawType !== 'block') {
    throw unsupported(bs, `disk '${disk}': backing store type ${quote(rawType)}: only file and block are supported`);
  }
  const formatEl = single(bs, 'format');
  const rawFormat = formatEl ? attr(formatEl, 'type') : undefined;
  if (rawFormat === undefined) {
    throw invalid(bs, `disk '${disk}': missing <format type=...> (backing formats are declared, never probed)`);
  }
  const format = diskFormat(formatEl ?? bs, rawFormat, 'backing store');
  const path = attr(source, sourceAttr(rawType));
  if (path === undefined || path === '') {
    throw invalid(source, `disk '${disk}': backing store of type ${rawType} needs <source ${sourceAttr(rawType)}=...>`);
  }
  checkPath(path, `a backing store of disk '${disk}'`, source);
  const next = parseBacking(bs, format, disk);
  return next === undefined ? { type: rawType, format, path } : { type: rawType, format, path, backingStore: next };
}

export function parseDisk(el: XmlElement): DiskDef {
  const type = attr(el, 'type') ?? 'file';
  if (type !== 'file' && type !== 'block') {
    throw unsupported(el, `disk type ${quote(type)}: only file and block disks are supported`, { value: type });
  }
  const device = attr(el, 'device') ?? 'disk';
  if (device === 'lun') throw unsupported(el, "device='lun' (SCSI passthrough) is not supported");
  if (device !== 'disk' && device !== 'cdrom' && device !== 'floppy') {
    throw invalid(el, `device=${quote(device)} must be one of disk, cdrom, floppy`);
  }

  const target = single(el, 'target');
  if (!target) throw invalid(el, 'missing <target dev=...>');
  const dev = attr(target, 'dev');
  if (dev === undefined) throw invalid(target, 'missing dev=');
  if (!DISK_TARGET.test(dev)) {
    throw invalid(target, `dev=${quote(dev)} is not a disk target name (fda, hdc, sda, vdb, ...)`);
  }
  const bus = oneOf(target, 'bus', DISK_BUSES) ?? defaultBus(dev, device);
  if (device === 'floppy' && bus !== 'fdc')
    throw invalid(target, `disk '${dev}': a floppy must be on bus 'fdc', not ${quote(bus)}`);

  const driver = single(el, 'driver');
  const format = diskFormat(driver ?? el, driver ? attr(driver, 'type') : undefined, `disk '${dev}'`);

  const source = single(el, 'source');
  const want = sourceAttr(type);
  let path = source ? attr(source, want) : undefined;
  if (path === '') path = undefined;
  if (source && path === undefined && attr(source, want === 'file' ? 'dev' : 'file') !== undefined) {
    throw invalid(source, `disk '${dev}' of type ${type} takes <source ${want}=...>`);
  }
  if (path === undefined && device === 'disk') throw invalid(el, `disk '${dev}' has no <source ${want}=...>`);
  if (path !== undefined && source) checkPath(path, `disk '${dev}'`, source);

  const backingStore = parseBacking(el, format, dev);
  const address = parsePciAddress(el);
  return {
    type,
    device,
    format,
    ...(path === undefined ? {} : { path }),
    ...(backingStore === undefined ? {} : { backingStore }),
    target: { dev, bus },
    // libvirt: a CD-ROM is always read-only.
    readonly: device === 'cdrom' || single(el, 'readonly') !== undefined,
    shareable: single(el, 'shareable') !== undefined,
    seclabels: source ? parseDeviceSeclabels(source) : [],
    ...(address === undefined ? {} : { address }),
  };
}

/** An on/off attribute (`append`); undefined when absent. */
function onOff(el: XmlElement, name: string): boolean | undefined {
  const v = oneOf(el, name, ['on', 'off'] as const);
  return v === undefined ? undefined : v === 'on';
}

/** `<log file append>` of a chardev. */
function parseLog(el: XmlElement, element: string): ChardevLogDef | undefined {
  const log = single(el, 'log');
  if (!log) return undefined;
  const file = attr(log, 'file');
  if (file === undefined || file === '') throw invalid(log, 'missing file=');
  checkPath(file, `the log of a ${element}`, log);
  const append = onOff(log, 'append');
  return append === undefined ? { file } : { file, append };
}

/** The `<target>` facts of a console or channel (a serial's target type is its model's business). */
function parseTarget(el: XmlElement, element: ChardevDef['element'], type: string): { targetType?: string; targetName?: string } {
  const target = single(el, 'target');
  if (element === 'serial') return {};
  if (element === 'console') {
    const t = consoleTargetType(el);
    if (t !== 'serial' && t !== 'virtio')
      throw unsupported(target ?? el, `console target type ${quote(t)}: only serial and virtio are supported`);
    return { targetType: t };
  }
  const t = target ? attr(target, 'type') : undefined;
  if (t !== 'virtio') throw unsupported(target ?? el, `channel target type ${quote(t ?? '')}: only virtio is supported`);
  const name = target ? attr(target, 'name') : undefined;
  if (name !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(name)) {
    throw invalid(target ?? el, `channel name ${quote(name)} must be 1-100 of A-Z a-z 0-9 . _ - (it names a socket file)`);
  }
  if (name === undefined && type === 'unix' && !attr(single(el, 'source') ?? el, 'path')) {
    throw invalid(target ?? el, 'a unix channel without <source path> needs <target name=...> to name its socket');
  }
  return { targetType: t, ...(name === undefined ? {} : { targetName: name }) };
}

/** A serial, console or channel element as a chardev (the alias question is decided by the caller). */
export function parseChardev(el: XmlElement, element: ChardevDef['element']): ChardevDef {
  const type = attr(el, 'type') ?? 'pty';
  const spice = type === 'spicevmc' && element === 'channel';
  if (type !== 'pty' && type !== 'file' && type !== 'unix' && type !== 'pipe' && !spice) {
    const also = element === 'channel' ? ' (and spicevmc)' : '';
    throw unsupported(el, `${element} type ${quote(type)}: only pty, file, unix and pipe${also} are supported`, { value: type });
  }
  const source = single(el, 'source');
  const target = single(el, 'target');
  const portRaw = target ? attr(target, 'port') : undefined;
  const targetPort = portRaw === undefined ? undefined : parseUnsigned(target ?? el, portRaw, 'port', 65535);
  const seclabels = source ? parseDeviceSeclabels(source) : [];
  const log = parseLog(el, element);
  const common = {
    element,
    type,
    seclabels,
    ...(targetPort === undefined ? {} : { targetPort }),
    ...parseTarget(el, element, type),
    ...(log === undefined ? {} : { log }),
  } as const;
  if (type === 'pty' || type === 'spicevmc') return common; // a pty's <source path> is output (the allocated /dev/pts/N)

  const path = source ? attr(source, 'path') : undefined;
  if (element === 'channel' && type === 'unix' && (path === undefined || path === '')) {
    // libvirt's rule: the socket goes in the guest's own directory, named after the channel
    const mode = source ? (oneOf(source, 'mode', ['bind', 'connect'] as const) ?? 'bind') : 'bind';
    if (mode !== 'bind') throw invalid(source ?? el, "a unix channel in mode 'connect' needs <source path=...>");
    return { ...common, mode };
  }
  if (!source || path === undefined || path === '')
    throw invalid(source ?? el, `${element} of type ${type} needs <source path=...>`);
  checkPath(path, `${element} of type ${type}`, source);
  if (type === 'pipe') return { ...common, path };
  if (type === 'file') {
    const append = onOff(source, 'append');
    return append === undefined ? { ...common, path } : { ...common, path, append };
  }
  const mode = oneOf(source, 'mode', ['bind', 'connect'] as const) ?? 'bind';
  return { ...common, path, mode };
}

/** The target type of a console: absent means 'serial' for hvm guests (libvirt). */
export function consoleTargetType(el: XmlElement): string {
  const target = single(el, 'target');
  return (target ? attr(target, 'type') : undefined) ?? 'serial';
}

/**
 * The first console is an alias of the first serial port when both exist and the console
 * targets 'serial' (libvirt keeps it only as a second name for that port).
 */
export function aliasConsole(devices: XmlElement): XmlElement | undefined {
  const first = childElements(devices, 'console')[0];
  if (!first || childElements(devices, 'serial').length === 0) return undefined;
  return consoleTargetType(first) === 'serial' ? first : undefined;
}

/**
 * Each chardev of `chardevs` (def.chardevs, in their order) paired with its element in
 * `devices`: the n-th serial, console (the alias console left out) or channel element.
 * `children` lists a tag's elements in whichever tree the caller holds (read-only or mutable).
 */
export function chardevElements<E extends XmlElement>(
  chardevs: readonly { readonly element: 'serial' | 'console' | 'channel' }[],
  devices: E,
  children: (tag: 'serial' | 'console' | 'channel') => E[],
): Map<number, E> {
  const alias = aliasConsole(devices);
  const pools = {
    serial: children('serial'),
    console: children('console').filter((el) => el !== alias),
    channel: children('channel'),
  };
  const next = { serial: 0, console: 0, channel: 0 };
  const out = new Map<number, E>();
  chardevs.forEach((c, i) => {
    const el = pools[c.element][next[c.element]++];
    if (el) out.set(i, el);
  });
  return out;
}

export function parseDevices(devices: XmlElement | undefined, inactive = false): ParsedDevices {
  const empty = { disks: [], chardevs: [], interfaces: [], graphics: [], videos: [], inputs: [], ignoredDevices: [] };
  const out: ParsedDevices = { ...empty, tpms: [], filesystems: [] };
  if (!devices) return out;
  let emulator: string | undefined;
  const emulatorEl = single(devices, 'emulator');
  if (emulatorEl) {
    emulator = singleText(devices, 'emulator');
    if (emulator === undefined) throw invalid(emulatorEl, 'empty <emulator>');
    checkPath(emulator, 'the emulator', emulatorEl);
  }
  const alias = aliasConsole(devices);
  const targets = new Map<string, XmlElement>();
  let consoles = 0;
  for (const el of childElements(devices)) {
    switch (el.name) {
      case 'emulator':
      case 'controller': // parse-machine.ts
      case 'rng':
      case 'memballoon':
        break;
      case 'disk': {
        const disk = parseDisk(el);
        const before = targets.get(disk.target.dev);
        if (before)
          throw invalid(el, `target ${quote(disk.target.dev)} is already used by the <disk> at line ${before.line ?? '?'}`);
        targets.set(disk.target.dev, el);
        out.disks.push(disk);
        break;
      }
      case 'interface':
        out.interfaces.push(parseInterface(el, inactive));
        break;
      case 'serial':
        out.chardevs.push(parseChardev(el, 'serial'));
        break;
      case 'channel':
        out.chardevs.push(parseChardev(el, 'channel'));
        break;
      case 'graphics':
        out.graphics.push(parseGraphics(el));
        break;
      case 'video':
        out.videos.push(parseVideo(el));
        break;
      case 'input':
        out.inputs.push(parseInput(el));
        break;
      case 'console':
        if (consoles++ > 0 && consoleTargetType(el) === 'serial') {
          throw invalid(el, "only the first <console> can target a serial port (set <target type='virtio'/>)");
        }
        if (el === alias)
          parseChardev(el, 'console'); // validated, but the same device as serial 0
        else out.chardevs.push(parseChardev(el, 'console'));
        break;
      case 'tpm':
      case 'filesystem':
        addHelperDevice(out, el);
        break;
      default:
        out.ignoredDevices.push(el.line === undefined ? { name: el.name } : { name: el.name, line: el.line });
    }
  }
  return emulator === undefined ? out : { ...out, emulator };
}
