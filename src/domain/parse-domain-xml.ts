/**
 * libvirt domain XML → `DomainDef`. Validates what svirt acts on; keeps the whole tree in
 * `source` so what svirt does not model survives `formatDomainXml`.
 */
import { checkSharedMemory } from './helper-devices.js';
import { SvirtError } from '../errors.js';
import type { DomainDef, LoaderDef, NvramDef, OsDef, XmlElement } from './domain-def.js';
import { parseDevices } from './parse-devices.js';
import { parseFirmware, parseMachineDevices } from './parse-machine.js';
import { parseDomainSeclabels } from './parse-seclabels.js';
import { checkPath, invalid, oneOf, parseUnsigned, quote, single, singleText, unsupported, yesNo } from './parse-util.js';
import { parseXml } from './xml.js';
import { attr, childElements, textOf } from './xml-tree.js';
import { randomUuid } from '../host/random.js';

export interface ParseDomainOptions {
  /** UUID for a definition without `<uuid>`; default crypto.randomUUID. */
  readonly generateUuid?: () => string;
  /**
   * Parse as a new, inactive definition (libvirt's VIR_DOMAIN_DEF_PARSE_INACTIVE, what
   * `virsh define` does): the output-only `<label>`/`<imagelabel>` of a dynamic seclabel
   * and the `<imagelabel>` of a static one are dropped. Default false: keep them, as when
   * reading back the live XML of a running guest.
   */
  readonly inactive?: boolean;
}

/** Why `name` cannot be a domain name, or undefined. Names end up in paths and profile names. */
export function domainNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'it is empty';
  if (name.length > 64) return 'it is longer than 64 characters';
  const bad = /[^A-Za-z0-9_.+-]/.exec(name);
  if (bad) return `it contains ${quote(bad[0])} (allowed: A-Z a-z 0-9 _ . + -)`;
  if (name.startsWith('.') || name.startsWith('-')) return "it starts with '.' or '-'";
  return undefined;
}

/**
 * libvirt's UUID forms (32 hex digits, dashes allowed between digit pairs, surrounding
 * whitespace ignored) in canonical lower-case 8-4-4-4-12 form, or undefined.
 */
export function canonicalUuid(raw: string): string | undefined {
  const t = raw.trim();
  if (!/^-*(?:[0-9A-Fa-f]{2}-*){16}$/.test(t)) return undefined;
  const hex = t.replace(/-/g, '').toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Bytes per unit, libvirt's virScaleInteger: KB/MB/... are powers of 1000, k/KiB/M/MiB/... of 1024. */
export function unitBytes(unit: string): bigint | undefined {
  const u = unit.toLowerCase();
  if (u === 'b' || u === 'byte' || u === 'bytes') return 1n;
  const power = 'kmgtpe'.indexOf(u.charAt(0));
  if (u === '' || power === -1) return undefined;
  const rest = u.slice(1);
  const base = rest === '' || rest === 'ib' ? 1024n : rest === 'b' ? 1000n : undefined;
  return base === undefined ? undefined : base ** BigInt(power + 1);
}

/** A `<memory>`-like element in KiB, rounded up as libvirt does. */
function memoryKiB(el: XmlElement): number {
  const unit = attr(el, 'unit') ?? 'KiB';
  const scale = unitBytes(unit);
  if (scale === undefined) {
    throw invalid(el, `unit=${quote(unit)} is not a unit (b, bytes, KB, k, KiB, MB, M, MiB, GB, G, GiB, TB, T, TiB)`, { unit });
  }
  const raw = textOf(el);
  const t = raw.trim();
  if (!/^[0-9]+$/.test(t)) throw invalid(el, `${quote(raw)} is not a non-negative integer`, { value: raw });
  if (t.length > 30) throw invalid(el, `${t.slice(0, 30)}... is too large`, { value: t });
  const kib = (BigInt(t) * scale + 1023n) / 1024n;
  if (kib === 0n) throw invalid(el, 'memory size must be positive', { value: t });
  if (kib > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(el, `${t} ${unit} is too large`, { value: t });
  return Number(kib);
}

const ARCH = /^[A-Za-z0-9_]{1,32}$/;
// QEMU option syntax: a comma would smuggle extra -machine options.
const MACHINE = /^[A-Za-z0-9._-]{1,64}$/;

function osPath(os: XmlElement, name: string): string | undefined {
  const p = singleText(os, name);
  const el = single(os, name);
  return p === undefined || !el ? undefined : checkPath(p, `<os><${name}>`, el);
}

function parseLoader(os: XmlElement): LoaderDef | undefined {
  const el = single(os, 'loader');
  const path = el ? textOf(el) : '';
  if (!el || path === '') return undefined; // firmware auto-selection: no path yet
  checkPath(path, 'the firmware loader', el);
  const type = oneOf(el, 'type', ['rom', 'pflash'] as const);
  const readonly = yesNo(el, 'readonly') ?? false;
  const secure = yesNo(el, 'secure');
  return { path, readonly, ...(type === undefined ? {} : { type }), ...(secure ? { secure } : {}) };
}

function parseNvram(os: XmlElement): NvramDef | undefined {
  const el = single(os, 'nvram');
  if (!el) return undefined;
  const kind = attr(el, 'type') ?? 'file';
  if (kind !== 'file' && kind !== 'block') throw unsupported(el, `nvram type ${quote(kind)}: only file and block are supported`);
  const source = single(el, 'source');
  const fromSource = source ? attr(source, kind === 'file' ? 'file' : 'dev') : undefined;
  const path = fromSource ?? textOf(el);
  if (path === '') return undefined; // libvirt generates the path from the template; nothing to act on yet
  checkPath(path, 'the nvram store', source ?? el);
  const template = attr(el, 'template');
  if (template === undefined) return { path };
  return { path, template: checkPath(template, 'the nvram template', el) };
}

function parseOs(root: XmlElement): OsDef {
  const os = single(root, 'os');
  if (!os) throw invalid(root, 'missing <os> (e.g. <os><type>hvm</type></os>)');
  const typeEl = single(os, 'type');
  if (!typeEl) throw invalid(os, 'missing <type>hvm</type>');
  const type = textOf(typeEl).trim();
  if (type !== 'hvm') throw unsupported(typeEl, `os type ${quote(type)}: QEMU/KVM guests are 'hvm'`);
  const arch = attr(typeEl, 'arch');
  if (arch !== undefined && !ARCH.test(arch)) throw invalid(typeEl, `arch=${quote(arch)} is not an architecture name`);
  const machine = attr(typeEl, 'machine');
  if (machine !== undefined && !MACHINE.test(machine))
    throw invalid(typeEl, `machine=${quote(machine)} is not a machine type name`);
  const kernel = osPath(os, 'kernel');
  const initrd = osPath(os, 'initrd');
  const dtb = osPath(os, 'dtb');
  const cmdline = singleText(os, 'cmdline');
  const loader = parseLoader(os);
  const nvram = parseNvram(os);
  const firmware = parseFirmware(os);
  return {
    type,
    ...(arch === undefined ? {} : { arch }),
    ...(machine === undefined ? {} : { machine }),
    ...(kernel === undefined ? {} : { kernel }),
    ...(initrd === undefined ? {} : { initrd }),
    ...(cmdline === undefined ? {} : { cmdline }),
    ...(dtb === undefined ? {} : { dtb }),
    ...(loader === undefined ? {} : { loader }),
    ...(nvram === undefined ? {} : { nvram }),
    ...(firmware === undefined ? {} : { firmware }),
  };
}

function parseName(root: XmlElement): string {
  const el = single(root, 'name');
  const name = el ? textOf(el) : '';
  if (!el || name === '') throw invalid(el ?? root, 'missing <name> (every domain needs a name)');
  const problem = domainNameProblem(name);
  if (problem !== undefined) throw invalid(el, `domain name ${quote(name)} is not allowed: ${problem}`, { name });
  return name;
}

function parseUuid(root: XmlElement, generate: () => string): string {
  const el = single(root, 'uuid');
  const raw = el ? textOf(el) : '';
  if (el && raw.trim() !== '') {
    const uuid = canonicalUuid(raw);
    if (uuid === undefined) throw invalid(el, `uuid ${quote(raw)} is not 32 hex digits (8-4-4-4-12)`, { uuid: raw });
    return uuid;
  }
  const made = generate();
  const uuid = canonicalUuid(made);
  if (uuid === undefined) throw new SvirtError('SVIRT_ERR_INTERNAL', `generated uuid ${quote(made)} is not a UUID`);
  return uuid;
}

/** Builds a `DomainDef` from an already parsed tree. */
export function domainFromTree(root: XmlElement, options: ParseDomainOptions = {}): DomainDef {
  if (root.name !== 'domain') throw invalid(root, `the root element must be <domain>, not <${root.name}>`);
  const type = attr(root, 'type');
  if (type === undefined) throw invalid(root, 'missing type= (kvm or qemu)');
  if (type !== 'kvm' && type !== 'qemu') {
    throw unsupported(root, `domain type ${quote(type)}: only kvm and qemu are supported`, { value: type });
  }
  const name = parseName(root);
  const uuid = parseUuid(root, options.generateUuid ?? randomUuid);
  const title = singleText(root, 'title');
  if (title !== undefined && /[\r\n]/.test(title))
    throw invalid(single(root, 'title') ?? root, 'a title must not contain newlines');
  const description = singleText(root, 'description');

  const memoryEl = single(root, 'memory');
  if (!memoryEl) throw invalid(root, 'missing <memory>');
  const memory = memoryKiB(memoryEl);
  const currentEl = single(root, 'currentMemory');
  const current = currentEl ? memoryKiB(currentEl) : memory;
  if (currentEl && current > memory) {
    throw invalid(currentEl, `currentMemory (${current} KiB) is larger than memory (${memory} KiB)`);
  }
  const vcpuEl = single(root, 'vcpu');
  const vcpus = vcpuEl ? parseUnsigned(vcpuEl, textOf(vcpuEl), 'vcpu count') : 1;
  if (vcpuEl && vcpus === 0) throw invalid(vcpuEl, 'the vcpu count must be at least 1');
  const vcpusCurrent = vcpuEl ? currentVcpus(vcpuEl, vcpus) : undefined;

  const os = parseOs(root);
  const featuresEl = single(root, 'features');
  const features = featuresEl ? childElements(featuresEl).map((f) => f.name) : [];
  const devices = parseDevices(single(root, 'devices'), options.inactive ?? false);
  const machine = parseMachineDevices(single(root, 'devices'));
  checkSharedMemory(root, devices.filesystems);
  const seclabels = parseDomainSeclabels(root, options.inactive ?? false);

  return {
    type,
    name,
    uuid,
    ...(title === undefined ? {} : { title }),
    ...(description === undefined ? {} : { description }),
    memoryKiB: memory,
    currentMemoryKiB: current,
    vcpus,
    ...(vcpusCurrent === undefined ? {} : { vcpusCurrent }),
    os,
    features,
    ...(devices.emulator === undefined ? {} : { emulator: devices.emulator }),
    disks: devices.disks,
    chardevs: devices.chardevs,
    interfaces: devices.interfaces,
    ...machine,
    ...(devices.tpms.length > 0 ? { tpms: devices.tpms } : {}),
    ...(devices.filesystems.length > 0 ? { filesystems: devices.filesystems } : {}),
    ...(devices.graphics.length > 0 ? { graphics: devices.graphics } : {}),
    ...(devices.videos.length > 0 ? { videos: devices.videos } : {}),
    ...(devices.inputs.length > 0 ? { inputs: devices.inputs } : {}),
    seclabels,
    ignoredDevices: devices.ignoredDevices,
    source: root,
  };
}

/**
 * Parses libvirt domain XML. Errors are SvirtErrors: SVIRT_ERR_XML_MALFORMED (not XML, or
 * refused XML such as a DOCTYPE), SVIRT_ERR_XML_INVALID (a value or combination libvirt
 * would refuse), SVIRT_ERR_XML_UNSUPPORTED (valid libvirt, not something svirt runs),
 * SVIRT_ERR_PATH_INVALID (a path svirt will not hand to QEMU or a security driver).
 */
export function parseDomainXml(text: string, options: ParseDomainOptions = {}): DomainDef {
  return domainFromTree(parseXml(text), options);
}

/** `<vcpu current='N'>`: 1..max; equal to the maximum, it is the same as leaving it out. */
function currentVcpus(el: XmlElement, max: number): number | undefined {
  const raw = attr(el, 'current');
  if (raw === undefined) return undefined;
  const n = parseUnsigned(el, raw, 'current vcpu count');
  if (n === 0 || n > max) throw invalid(el, `the current vcpu count (${n}) must be between 1 and the maximum (${max})`);
  return n === max ? undefined : n;
}
