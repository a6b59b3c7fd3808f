/**
 * `DomainDef` → libvirt domain XML. The typed fields of the definition win; everything in
 * `def.source` that svirt does not model (unknown elements and attributes, comments,
 * element order) is kept.
 */
import { sameData } from './same-data.js';
import { SvirtError } from '../errors.js';
import type { DomainDef, OsDef, SecLabelDef } from './domain-def.js';
import { formatDevices } from './format-devices.js';
import { formatFirmware } from './format-machine.js';
import { DISK_TARGET } from './parse-devices.js';
import { canonicalUuid, domainNameProblem } from './parse-domain-xml.js';
import { parseDomainSeclabels } from './parse-seclabels.js';
import { checkPath, quote } from './parse-util.js';
import { serializeXml } from './xml.js';
import type { MutableElement } from './xml-tree.js';
import {
  attr,
  cloneTree,
  elem,
  ensureChild,
  insertOrdered,
  mChildren,
  mFirst,
  removeChildren,
  setAttr,
  setText,
  textOf,
} from './xml-tree.js';

/** libvirt's order of the children of `<domain>` (where new elements go). */
const DOMAIN_ORDER = [
  'name',
  'uuid',
  'genid',
  'title',
  'description',
  'metadata',
  'maxMemory',
  'memory',
  'currentMemory',
  'blkiotune',
  'memtune',
  'memoryBacking',
  'vcpu',
  'vcpus',
  'iothreads',
  'iothreadids',
  'defaultiothread',
  'cputune',
  'numatune',
  'resource',
  'sysinfo',
  'bootloader',
  'bootloader_args',
  'os',
  'idmap',
  'throttlegroups',
  'features',
  'cpu',
  'clock',
  'on_poweroff',
  'on_reboot',
  'on_crash',
  'on_lockfailure',
  'pm',
  'perf',
  'devices',
  'seclabel',
  'keywrap',
  'launchSecurity',
] as const satisfies readonly string[];

const OS_ORDER = [
  'type',
  'firmware',
  'loader',
  'nvram',
  'varstore',
  'kernel',
  'initrd',
  'cmdline',
  'shim',
  'dtb',
  'acpi',
  'boot',
  'bootmenu',
  'smbios',
  'bios',
] as const satisfies readonly string[];

function invalidDef(reason: string): SvirtError {
  return new SvirtError('SVIRT_ERR_XML_INVALID', `cannot format domain: ${reason}`);
}

function positive(n: number, what: string): string {
  if (!Number.isSafeInteger(n) || n < 1) throw invalidDef(`${what} ${n} is not a positive integer`);
  return String(n);
}

/** The checks a parse would make on the typed fields, so formatted XML always reads back. */
function validate(def: DomainDef): void {
  const nameProblem = domainNameProblem(def.name);
  if (nameProblem !== undefined) throw invalidDef(`domain name ${quote(def.name)} is not allowed: ${nameProblem}`);
  if (canonicalUuid(def.uuid) === undefined) throw invalidDef(`uuid ${quote(def.uuid)} is not a UUID`);
  if (def.currentMemoryKiB > def.memoryKiB) {
    throw invalidDef(`currentMemory (${def.currentMemoryKiB} KiB) is larger than memory (${def.memoryKiB} KiB)`);
  }
  const os = def.os;
  for (const [p, what] of [
    [os.kernel, 'the kernel'],
    [os.initrd, 'the initrd'],
    [os.dtb, 'the dtb'],
    [os.loader?.path, 'the firmware loader'],
    [os.nvram?.path, 'the nvram store'],
    [os.nvram?.template, 'the nvram template'],
    [def.emulator, 'the emulator'],
  ] as const) {
    if (p !== undefined) checkPath(p, what);
  }
  if (def.title !== undefined && /[\r\n]/.test(def.title)) throw invalidDef('a title must not contain newlines');
  const targets = new Set<string>();
  for (const d of def.disks) {
    const dev = d.target.dev;
    if (!DISK_TARGET.test(dev)) throw invalidDef(`disk target ${quote(dev)} is not a disk target name`);
    if (targets.has(dev)) throw invalidDef(`two disks use target ${quote(dev)}`);
    targets.add(dev);
    if (d.path !== undefined) checkPath(d.path, `disk '${dev}'`);
    for (let b = d.backingStore; b; b = b.backingStore) checkPath(b.path, `a backing store of disk '${dev}'`);
    for (const l of d.seclabels) checkLabel(l.label);
  }
  for (const c of def.chardevs) {
    if (c.path !== undefined) checkPath(c.path, `${c.element} of type ${c.type}`);
    for (const l of c.seclabels) checkLabel(l.label);
  }
  for (const l of def.seclabels) for (const v of [l.label, l.imagelabel, l.baselabel]) checkLabel(v);
}

function checkLabel(label: string | undefined): void {
  if (label !== undefined && /[\u0000-\u001f\u007f]/.test(label))
    throw invalidDef(`label ${quote(label)} contains a control character`);
}

/** Sets the text of child `name`, creating it in schema order; undefined removes it. */
function textChild(
  parent: MutableElement,
  name: string,
  value: string | undefined,
  order: readonly string[],
): MutableElement | undefined {
  if (value === undefined) {
    removeChildren(parent, name);
    return undefined;
  }
  const el = ensureChild(parent, name, order);
  setText(el, value);
  return el;
}

function setMemory(root: MutableElement, name: string, kib: number): void {
  const el = ensureChild(root, name, DOMAIN_ORDER);
  setAttr(el, 'unit', 'KiB');
  setText(el, positive(kib, `<${name}>`));
}

function formatOs(root: MutableElement, os: OsDef): void {
  const el = ensureChild(root, 'os', DOMAIN_ORDER);
  const type = textChild(el, 'type', os.type, OS_ORDER);
  if (type) {
    setAttr(type, 'arch', os.arch);
    setAttr(type, 'machine', os.machine);
  }
  formatFirmware(el, os.firmware, OS_ORDER);
  textChild(el, 'kernel', os.kernel, OS_ORDER);
  textChild(el, 'initrd', os.initrd, OS_ORDER);
  textChild(el, 'cmdline', os.cmdline, OS_ORDER);
  textChild(el, 'dtb', os.dtb, OS_ORDER);

  // A <loader> or <nvram> without a path (firmware auto-selection) is not modelled: kept.
  const loader = mFirst(el, 'loader');
  if (os.loader === undefined) {
    if (loader && textOf(loader) !== '') removeChildren(el, 'loader');
  } else {
    const l = loader ?? ensureChild(el, 'loader', OS_ORDER);
    if ((attr(l, 'readonly') === 'yes') !== os.loader.readonly) setAttr(l, 'readonly', os.loader.readonly ? 'yes' : 'no');
    if ((attr(l, 'secure') === 'yes') !== (os.loader.secure ?? false)) setAttr(l, 'secure', os.loader.secure ? 'yes' : undefined);
    setAttr(l, 'type', os.loader.type);
    setText(l, os.loader.path);
  }
  const nvram = mFirst(el, 'nvram');
  if (os.nvram === undefined) {
    if (nvram && (textOf(nvram) !== '' || mFirst(nvram, 'source'))) removeChildren(el, 'nvram');
  } else {
    const n = nvram ?? ensureChild(el, 'nvram', OS_ORDER);
    setAttr(n, 'template', os.nvram.template);
    const source = mFirst(n, 'source');
    if (source) setAttr(source, attr(n, 'type') === 'block' ? 'dev' : 'file', os.nvram.path);
    else setText(n, os.nvram.path);
  }
}

/** Feature elements in `features` order, reusing existing ones (and their attributes). */
function formatFeatures(root: MutableElement, features: readonly string[]): void {
  const el = mFirst(root, 'features');
  if (features.length === 0) {
    if (el) removeChildren(root, 'features');
    return;
  }
  const f = el ?? ensureChild(root, 'features', DOMAIN_ORDER);
  const pool = mChildren(f);
  if (
    sameData(
      pool.map((c) => c.name),
      [...features],
    )
  )
    return;
  const picked = features.map((name) => {
    const i = pool.findIndex((c) => c.name === name);
    return i === -1 ? elem(name) : (pool.splice(i, 1)[0] ?? elem(name));
  });
  f.children = [...f.children.filter((c) => c.kind !== 'element'), ...picked];
}

/** libvirt's shape of a domain-level `<seclabel>`. */
export function seclabelElement(l: SecLabelDef): MutableElement {
  if (l.type === 'none')
    return elem('seclabel', [
      ['type', 'none'],
      ['model', l.model],
    ]);
  const relabel = l.relabel ?? l.type === 'dynamic';
  const kids: MutableElement[] = [];
  if (l.model !== 'none') {
    if (l.label !== undefined) kids.push(elem('label', [], l.label));
    if (l.imagelabel !== undefined) kids.push(elem('imagelabel', [], l.imagelabel));
    if (l.baselabel !== undefined && l.type === 'dynamic') kids.push(elem('baselabel', [], l.baselabel));
  }
  return elem(
    'seclabel',
    [
      ['type', l.type],
      ['model', l.model],
      ['relabel', relabel ? 'yes' : 'no'],
    ],
    kids,
  );
}

function readSeclabels(root: MutableElement): SecLabelDef[] | undefined {
  try {
    return parseDomainSeclabels(root, false);
  } catch {
    return undefined; // a hand-built source may hold anything: then the labels are rewritten
  }
}

function formatSeclabels(root: MutableElement, labels: readonly SecLabelDef[]): void {
  // Unchanged labels keep their elements as written (and their position).
  if (sameData(readSeclabels(root), [...labels])) return;
  const first = root.children.findIndex((c) => c.kind === 'element' && c.name === 'seclabel');
  removeChildren(root, 'seclabel');
  const made = labels.map(seclabelElement);
  const devices = mFirst(root, 'devices');
  const at = devices ? root.children.indexOf(devices) + 1 : first !== -1 ? first : -1;
  if (at !== -1) root.children.splice(at, 0, ...made);
  else for (const el of made) insertOrdered(root, el, DOMAIN_ORDER);
}

/**
 * Formats a definition as libvirt domain XML (virsh dumpxml layout). Throws
 * SVIRT_ERR_XML_INVALID or SVIRT_ERR_PATH_INVALID when a typed field could not be read back.
 */
export function formatDomainXml(def: DomainDef): string {
  validate(def);
  const root = def.source.name === 'domain' ? cloneTree(def.source) : elem('domain');
  setAttr(root, 'type', def.type);
  textChild(root, 'name', def.name, DOMAIN_ORDER);
  textChild(root, 'uuid', canonicalUuid(def.uuid), DOMAIN_ORDER);
  textChild(root, 'title', def.title, DOMAIN_ORDER);
  textChild(root, 'description', def.description, DOMAIN_ORDER);
  setMemory(root, 'memory', def.memoryKiB);
  setMemory(root, 'currentMemory', def.currentMemoryKiB);
  const vcpu = mFirst(root, 'vcpu') ?? ensureChild(root, 'vcpu', DOMAIN_ORDER);
  if (vcpu.attrs.length === 0 && textOf(vcpu) === '') setAttr(vcpu, 'placement', 'static');
  setText(vcpu, positive(def.vcpus, '<vcpu>'));
  setAttr(vcpu, 'current', def.vcpusCurrent === undefined ? undefined : String(def.vcpusCurrent));
  formatOs(root, def.os);
  formatFeatures(root, def.features);
  formatDevices(root, def, DOMAIN_ORDER);
  formatSeclabels(root, def.seclabels);
  return serializeXml(root);
}
