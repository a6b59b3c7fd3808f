/**
 * `<interface>` → InterfaceDef. What svirt cannot run is refused with the element and its
 * line, never dropped: another NIC type, or a child that would change what the NIC does.
 */
import { isIP } from 'node:net';
import type { InterfaceDef, InterfaceType, NicModel, PortForwardDef, PortRangeDef } from './interface-def.js';
import type { XmlElement } from './domain-def.js';
import { invalid, oneOf, parseUnsigned, quote, single, unsupported, yesNo } from './parse-util.js';
import { parsePciAddress } from './parse-machine.js';
import { attr, childElements } from './xml-tree.js';

const TYPES: readonly InterfaceType[] = ['user', 'bridge', 'network'];
const MODELS: readonly NicModel[] = ['virtio', 'e1000', 'e1000e', 'rtl8139'];
/** Children svirt reads, plus `<address>` (the PCI address, kept for the address assigner). */
const KNOWN = new Set(['mac', 'source', 'target', 'model', 'backend', 'portForward', 'alias', 'link', 'address', 'driver']);

/** libvirt's prefixes of generated tap names: dropped from an inactive definition, as libvirt does. */
export const GENERATED_TAP_PREFIXES = ['vnet', 'macvtap', 'macvlan'] as const;

/** Why `name` cannot be a Linux interface name, or undefined. */
export function ifnameProblem(name: string): string | undefined {
  if (name === '') return 'it is empty';
  if (Buffer.byteLength(name) > 15) return 'it is longer than 15 bytes (IFNAMSIZ)';
  if (name === '.' || name === '..') return `it is ${quote(name)}`;
  const bad = /[^A-Za-z0-9_.+-]/.exec(name);
  if (bad) return `it contains ${quote(bad[0])} (allowed: A-Z a-z 0-9 _ . + -)`;
  if (name.startsWith('-')) return "it starts with '-'";
  return undefined;
}

/** A MAC address in canonical lower-case form, or undefined when it is not a unicast MAC. */
export function canonicalMac(raw: string): string | undefined {
  const t = raw.trim().toLowerCase();
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(t)) return undefined;
  return (parseInt(t.slice(0, 2), 16) & 1) === 0 ? t : undefined;
}

function parseRange(el: XmlElement): PortRangeDef {
  const num = (name: string): number | undefined => {
    const raw = attr(el, name);
    if (raw === undefined) return undefined;
    const n = parseUnsigned(el, raw, `${name}=`, 65535);
    if (n === 0) throw invalid(el, `${name}=0 is not a port`);
    return n;
  };
  const start = num('start');
  if (start === undefined) throw invalid(el, 'missing start=');
  const end = num('end');
  if (end !== undefined && end < start) throw invalid(el, `end=${end} is below start=${start}`);
  const to = num('to');
  const exclude = yesNo(el, 'exclude');
  if (exclude && to !== undefined) throw invalid(el, 'an excluded range takes no to=');
  if (to !== undefined && end !== undefined && to + (end - start) > 65535) throw invalid(el, 'to= + the range passes port 65535');
  return {
    start,
    ...(end === undefined ? {} : { end }),
    ...(to === undefined ? {} : { to }),
    ...(exclude === undefined ? {} : { exclude }),
  };
}

function parsePortForward(el: XmlElement): PortForwardDef {
  const proto = oneOf(el, 'proto', ['tcp', 'udp'] as const);
  if (proto === undefined) throw invalid(el, 'missing proto= (tcp or udp)');
  const address = attr(el, 'address');
  if (address !== undefined && isIP(address) === 0) throw invalid(el, `address=${quote(address)} is not an IP address`);
  const dev = attr(el, 'dev');
  if (dev !== undefined) {
    const problem = ifnameProblem(dev);
    if (problem !== undefined) throw invalid(el, `dev=${quote(dev)} is not an interface name: ${problem}`);
  }
  const ranges = childElements(el, 'range').map(parseRange);
  if (ranges.length === 0) throw invalid(el, 'a <portForward> needs at least one <range start=.../>');
  for (const c of childElements(el)) if (c.name !== 'range') throw unsupported(c, `<${c.name}> in <portForward>`);
  return {
    proto,
    ...(address === undefined ? {} : { address }),
    ...(dev === undefined ? {} : { dev }),
    ranges,
  };
}

function parseSource(el: XmlElement, type: InterfaceType): string | undefined {
  const source = single(el, 'source');
  if (type === 'user') {
    if (source) throw unsupported(source, "a <source> on a user interface (passt and slirp take the host's own network)");
    return undefined;
  }
  const key = type === 'bridge' ? 'bridge' : 'network';
  const value = source ? attr(source, key) : undefined;
  if (!source || value === undefined || value === '')
    throw invalid(source ?? el, `an interface of type ${type} needs <source ${key}=...>`);
  const problem = type === 'bridge' ? ifnameProblem(value) : networkNameProblem(value);
  if (problem !== undefined) throw invalid(source, `${key}=${quote(value)} is not allowed: ${problem}`);
  return value;
}

/** Why `name` cannot name an svirt network (it becomes part of file and nft table names), or undefined. */
export function networkNameProblem(name: string): string | undefined {
  if (name === '') return 'it is empty';
  if (name.length > 64) return 'it is longer than 64 characters';
  const bad = /[^A-Za-z0-9_.-]/.exec(name);
  if (bad) return `it contains ${quote(bad[0])} (allowed: A-Z a-z 0-9 _ . -)`;
  if (name.startsWith('.') || name.startsWith('-')) return "it starts with '.' or '-'";
  return undefined;
}

function parseTarget(el: XmlElement, type: InterfaceType, inactive: boolean): string | undefined {
  const target = single(el, 'target');
  if (!target) return undefined;
  const managed = yesNo(target, 'managed');
  if (managed === false) throw unsupported(target, "managed='no' (a tap made outside svirt): svirt makes every tap itself");
  const dev = attr(target, 'dev');
  if (dev === undefined || dev === '') return undefined;
  const problem = ifnameProblem(dev);
  if (problem !== undefined) throw invalid(target, `dev=${quote(dev)} is not an interface name: ${problem}`);
  if (type === 'user') return undefined; // no tap: libvirt ignores it too
  // A generated name belongs to the run that made it: a new start picks a free one.
  if (inactive && GENERATED_TAP_PREFIXES.some((p) => dev.startsWith(p))) return undefined;
  return dev;
}

function parseBackend(el: XmlElement, type: InterfaceType): InterfaceDef['backend'] {
  const backend = single(el, 'backend');
  if (!backend) return undefined;
  if (type !== 'user') throw unsupported(backend, `a <backend> on an interface of type ${type}`);
  for (const [k] of backend.attrs) if (k !== 'type') throw unsupported(backend, `backend attribute ${k}=`);
  return oneOf(backend, 'type', ['passt', 'default'] as const);
}

function parseAlias(el: XmlElement, inactive: boolean): string | undefined {
  const a = single(el, 'alias');
  const name = a ? attr(a, 'name') : undefined;
  if (!a || name === undefined) return undefined;
  if (!/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(name)) throw invalid(a, `alias ${quote(name)} is not a device id`);
  // libvirt keeps only user aliases (ua-...) in a definition; the others are live output.
  if (inactive && !name.startsWith('ua-')) return undefined;
  return name;
}

export function parseInterface(el: XmlElement, inactive: boolean): InterfaceDef {
  const raw = attr(el, 'type');
  if (raw === undefined) throw invalid(el, 'missing type= (user, bridge or network)');
  if (!(TYPES as readonly string[]).includes(raw)) {
    throw unsupported(el, `interface type ${quote(raw)}: only user, bridge and network are supported`, { value: raw });
  }
  const type = raw as InterfaceType;
  for (const c of childElements(el)) {
    if (!KNOWN.has(c.name)) throw unsupported(c, `<${c.name}> in an <interface> is not supported (it would be ignored)`);
  }
  const macEl = single(el, 'mac');
  const rawMac = macEl ? attr(macEl, 'address') : undefined;
  const mac = rawMac === undefined ? undefined : canonicalMac(rawMac);
  if (macEl && rawMac !== undefined && mac === undefined) {
    throw invalid(macEl, `address=${quote(rawMac)} is not a unicast MAC address (xx:xx:xx:xx:xx:xx, first octet even)`);
  }
  const modelEl = single(el, 'model');
  const modelRaw = modelEl ? attr(modelEl, 'type') : undefined;
  if (modelEl && modelRaw !== undefined && !(MODELS as readonly string[]).includes(modelRaw)) {
    throw unsupported(modelEl, `NIC model ${quote(modelRaw)}: only ${MODELS.join(', ')} are supported`);
  }
  const model = modelRaw as NicModel | undefined;
  const backend = parseBackend(el, type);
  const portForwards = childElements(el, 'portForward').map(parsePortForward);
  if (portForwards.length > 0 && (type !== 'user' || backend === 'default')) {
    throw unsupported(el, '<portForward> needs a user interface with the passt backend');
  }
  const driverEl = single(el, 'driver');
  if (driverEl)
    for (const [k] of driverEl.attrs) if (k !== 'name') throw unsupported(driverEl, `driver attribute ${k}= on an interface`);
  const driver = driverEl ? oneOf(driverEl, 'name', ['vhost', 'qemu'] as const) : undefined;
  const linkEl = single(el, 'link');
  const link = linkEl ? oneOf(linkEl, 'state', ['up', 'down'] as const) : undefined;
  const source = parseSource(el, type);
  const target = parseTarget(el, type, inactive);
  const alias = parseAlias(el, inactive);
  const address = parsePciAddress(el);
  return {
    type,
    ...(mac === undefined ? {} : { mac }),
    ...(model === undefined ? {} : { model }),
    ...(source === undefined ? {} : { source }),
    ...(target === undefined ? {} : { target }),
    ...(backend === undefined ? {} : { backend }),
    ...(driver === undefined ? {} : { driver }),
    portForwards,
    ...(alias === undefined ? {} : { alias }),
    ...(link === undefined ? {} : { link }),
    ...(address === undefined ? {} : { address }),
  };
}
