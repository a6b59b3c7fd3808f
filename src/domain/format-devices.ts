// Long file: one formatter per device kind over the same kept <devices> tree; each is short.
/**
 * Applies the typed devices of a `DomainDef` (emulator, disks, serial/console) to a clone of
 * its `<devices>` element, leaving every other device and unknown attribute in place.
 */
import { sameData } from './same-data.js';
import type { BackingStoreDef, ChardevDef, DeviceSecLabelDef, DiskDef, DomainDef } from './domain-def.js';
import { formatInterfaces } from './format-interface.js';
import { formatMachine, hasMachineDevices } from './format-machine.js';
import { formatHelperDevices } from './format-helper-devices.js';
import { aliasConsole, parseChardev, parseDisk } from './parse-devices.js';
import { formatDisplay } from './format-display.js';
import { parseDeviceSeclabels } from './parse-seclabels.js';
import type { MutableElement } from './xml-tree.js';
import {
  attr,
  elem,
  ensureChild,
  insertOrdered,
  mChildren,
  mFirst,
  removeChild,
  removeChildren,
  setAttr,
  setText,
} from './xml-tree.js';

export const DEVICES_ORDER = [
  'emulator',
  'disk',
  'controller',
  'lease',
  'filesystem',
  'interface',
  'smartcard',
  'serial',
  'parallel',
  'console',
  'channel',
  'input',
  'tpm',
  'graphics',
  'sound',
  'audio',
  'video',
  'hostdev',
  'redirdev',
  'redirfilter',
  'hub',
  'watchdog',
  'memballoon',
  'rng',
  'shmem',
  'memory',
  'iommu',
  'vsock',
  'crypto',
  'panic',
  'pstore',
] as const satisfies readonly string[];

const DISK_ORDER = [
  'driver',
  'auth',
  'source',
  'backingStore',
  'backenddomain',
  'geometry',
  'blockio',
  'mirror',
  'target',
  'iotune',
  'throttlefilters',
  'boot',
  'readonly',
  'shareable',
  'transient',
  'serial',
  'wwn',
  'vendor',
  'product',
  'encryption',
  'alias',
  'address',
] as const satisfies readonly string[];

const CHARDEV_ORDER = ['source', 'protocol', 'log', 'target', 'alias', 'address'] as const satisfies readonly string[];

function yn(b: boolean): string {
  return b ? 'yes' : 'no';
}

export function deviceSeclabelElement(s: DeviceSecLabelDef): MutableElement {
  return elem(
    'seclabel',
    [
      ['model', s.model],
      ['relabel', s.relabel === undefined ? undefined : yn(s.relabel)],
    ],
    s.label === undefined ? [] : [elem('label', [], s.label)],
  );
}

function srcAttr(type: 'file' | 'block'): 'file' | 'dev' {
  return type === 'file' ? 'file' : 'dev';
}

export function backingElement(b: BackingStoreDef): MutableElement {
  return elem(
    'backingStore',
    [['type', b.type]],
    [
      elem('format', [['type', b.format]]),
      elem('source', [[srcAttr(b.type), b.path]]),
      b.backingStore === undefined ? elem('backingStore') : backingElement(b.backingStore),
    ],
  );
}

function newDisk(d: DiskDef): MutableElement {
  const kids: MutableElement[] = [
    elem('driver', [
      ['name', 'qemu'],
      ['type', d.format],
    ]),
  ];
  if (d.path !== undefined || d.seclabels.length > 0) {
    kids.push(elem('source', [[srcAttr(d.type), d.path]], d.seclabels.map(deviceSeclabelElement)));
  }
  if (d.backingStore !== undefined) kids.push(backingElement(d.backingStore));
  kids.push(
    elem('target', [
      ['dev', d.target.dev],
      ['bus', d.target.bus],
    ]),
  );
  if (d.readonly) kids.push(elem('readonly'));
  if (d.shareable) kids.push(elem('shareable'));
  return elem(
    'disk',
    [
      ['type', d.type],
      ['device', d.device],
    ],
    kids,
  );
}

/** The element's current reading, or undefined when svirt cannot read it (it is then rewritten). */
function readable<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined; // a hand-built source tree may hold anything; the typed def wins
  }
}

/** Sets the given `<source>` attributes (undefined removes one) and replaces its seclabels when they differ. */
function applySource(
  parent: MutableElement,
  order: readonly string[],
  paths: ReadonlyArray<readonly [string, string | undefined]>,
  seclabels: readonly DeviceSecLabelDef[],
): void {
  let src = mFirst(parent, 'source');
  if (!src && paths.every(([, v]) => v === undefined) && seclabels.length === 0) return;
  src ??= ensureChild(parent, 'source', order);
  for (const [k, v] of paths) setAttr(src, k, v);
  const current = src;
  if (
    !sameData(
      readable(() => parseDeviceSeclabels(current)),
      [...seclabels],
    )
  ) {
    removeChildren(src, 'seclabel');
    src.children.push(...seclabels.map(deviceSeclabelElement));
  }
  if (src.attrs.length === 0 && src.children.length === 0) removeChild(parent, src);
}

function applyDisk(el: MutableElement, d: DiskDef): MutableElement {
  const cur = readable(() => parseDisk(el));
  if (!cur) return newDisk(d);
  if (sameData(cur, d)) return el;
  if (cur.type !== d.type) setAttr(el, 'type', d.type);
  if (cur.device !== d.device) setAttr(el, 'device', d.device);
  if (cur.format !== d.format) {
    const driver = mFirst(el, 'driver') ?? ensureChild(el, 'driver', DISK_ORDER);
    if (attr(driver, 'name') === undefined) setAttr(driver, 'name', 'qemu');
    setAttr(driver, 'type', d.format);
  }
  applySource(
    el,
    DISK_ORDER,
    [
      ['file', d.type === 'file' ? d.path : undefined],
      ['dev', d.type === 'block' ? d.path : undefined],
    ],
    d.seclabels,
  );
  if (!sameData(cur.backingStore, d.backingStore)) {
    removeChildren(el, 'backingStore');
    if (d.backingStore !== undefined) insertOrdered(el, backingElement(d.backingStore), DISK_ORDER);
  }
  const target = ensureChild(el, 'target', DISK_ORDER);
  if (cur.target.dev !== d.target.dev) setAttr(target, 'dev', d.target.dev);
  if (cur.target.bus !== d.target.bus) setAttr(target, 'bus', d.target.bus);
  for (const flag of ['readonly', 'shareable'] as const) {
    if (cur[flag] === d[flag]) continue;
    if (d[flag]) ensureChild(el, flag, DISK_ORDER);
    else removeChildren(el, flag);
  }
  return el;
}

/** Disks matched by target dev: updated in place, removed, or added; written in `disks` order. */
function formatDisks(devices: MutableElement, disks: readonly DiskDef[]): void {
  const existing = new Map<string, MutableElement>();
  for (const el of mChildren(devices, 'disk')) {
    const target = mFirst(el, 'target');
    const dev = target ? attr(target, 'dev') : undefined;
    if (dev !== undefined) existing.set(dev, el);
  }
  const first = devices.children.findIndex((c) => c.kind === 'element' && c.name === 'disk');
  removeChildren(devices, 'disk');
  const out = disks.map((d) => {
    const el = existing.get(d.target.dev);
    return el ? applyDisk(el, d) : newDisk(d);
  });
  if (first !== -1) devices.children.splice(first, 0, ...out);
  else for (const el of out) insertOrdered(devices, el, DEVICES_ORDER);
}

function sourceAttrs(c: ChardevDef): Array<readonly [string, string | undefined]> {
  return [
    ['mode', c.mode],
    ['path', c.path],
    ['append', c.append === undefined ? undefined : c.append ? 'on' : 'off'],
  ];
}

function logElement(c: ChardevDef): MutableElement | undefined {
  if (!c.log) return undefined;
  const append = c.log.append === undefined ? undefined : c.log.append ? 'on' : 'off';
  return elem('log', [
    ['file', c.log.file],
    ['append', append],
  ]);
}

function newChardev(c: ChardevDef, hasSerial: boolean): MutableElement {
  const kids: MutableElement[] = [];
  if (c.path !== undefined || c.seclabels.length > 0) {
    kids.push(elem('source', sourceAttrs(c), c.seclabels.map(deviceSeclabelElement)));
  }
  const log = logElement(c);
  if (log) kids.push(log);
  const port = c.targetPort === undefined ? undefined : String(c.targetPort);
  // A console next to a serial port must not target 'serial', or it reads back as its alias.
  const targetType =
    c.element === 'console'
      ? hasSerial
        ? 'virtio'
        : (c.targetType ?? 'serial')
      : c.element === 'channel'
        ? 'virtio'
        : undefined;
  if (targetType !== undefined || port !== undefined)
    kids.push(
      elem('target', [
        ['type', targetType],
        ['name', c.targetName],
        ['port', port],
      ]),
    );
  return elem(c.element, [['type', c.type]], kids);
}

function applyChardev(el: MutableElement, c: ChardevDef, hasSerial: boolean): { el: MutableElement; changed: boolean } {
  const cur = readable(() => parseChardev(el, c.element));
  if (!cur) return { el: newChardev(c, hasSerial), changed: true };
  if (sameData(cur, c)) return { el, changed: false };
  if (cur.type !== c.type) setAttr(el, 'type', c.type);
  // A pty's <source path> is output (the allocated /dev/pts/N): left alone unless the type changed.
  const paths: Array<readonly [string, string | undefined]> =
    c.type !== 'pty'
      ? sourceAttrs(c)
      : cur.type === 'pty'
        ? []
        : [
            ['mode', undefined],
            ['path', undefined],
            ['append', undefined],
          ];
  applySource(el, CHARDEV_ORDER, paths, c.seclabels);
  if (!sameData(cur.log, c.log)) {
    removeChildren(el, 'log');
    const log = logElement(c);
    if (log) insertOrdered(el, log, CHARDEV_ORDER);
  }
  if (cur.targetPort !== c.targetPort) {
    const target = ensureChild(el, 'target', CHARDEV_ORDER);
    setAttr(target, 'port', c.targetPort === undefined ? undefined : String(c.targetPort));
  }
  if (cur.targetName !== c.targetName) setAttr(ensureChild(el, 'target', CHARDEV_ORDER), 'name', c.targetName);
  return { el, changed: true };
}

/** Serials, (non-alias) consoles and channels matched by kind and position; the alias console follows serial 0. */
function formatChardevs(devices: MutableElement, chardevs: readonly ChardevDef[]): void {
  const alias = aliasConsole(devices) as MutableElement | undefined;
  const serials = mChildren(devices, 'serial');
  const pools = {
    serial: serials,
    console: mChildren(devices, 'console').filter((el) => el !== alias),
    channel: mChildren(devices, 'channel'),
  };
  const next = { serial: 0, console: 0, channel: 0 };
  const hasSerial = chardevs.some((c) => c.element === 'serial');
  const keep = new Set<MutableElement>();
  let serial0Changed = false;
  for (const c of chardevs) {
    const old = pools[c.element][next[c.element]++];
    if (old) {
      const r = applyChardev(old, c, hasSerial);
      if (r.el !== old) devices.children[devices.children.indexOf(old)] = r.el;
      keep.add(r.el);
      if (old === serials[0]) serial0Changed = r.changed;
    } else {
      const made = newChardev(c, hasSerial);
      insertOrdered(devices, made, DEVICES_ORDER);
      keep.add(made);
    }
  }
  for (const el of [...pools.serial, ...pools.console, ...pools.channel]) if (!keep.has(el)) removeChild(devices, el);
  if (!alias) return;
  const serial0 = mFirst(devices, 'serial');
  if (!serial0) {
    removeChild(devices, alias); // with no serial port left it would read back as a console of its own
  } else if (serial0Changed || serial0 !== serials[0]) {
    // libvirt writes the alias console with serial 0's type and source.
    setAttr(alias, 'type', attr(serial0, 'type'));
    removeChildren(alias, 'source');
    const src = mFirst(serial0, 'source');
    if (src) insertOrdered(alias, structuredClone(src), CHARDEV_ORDER);
  }
}

/** Applies emulator, disks, chardevs and display devices of `def` to the domain clone `root`. */
export function formatDevices(root: MutableElement, def: DomainDef, domainOrder: readonly string[]): void {
  const needed =
    def.emulator !== undefined ||
    def.disks.length > 0 ||
    def.chardevs.length > 0 ||
    def.interfaces.length > 0 ||
    hasMachineDevices(def) ||
    (def.tpms ?? []).length > 0 ||
    (def.filesystems ?? []).length > 0 ||
    (def.graphics?.length ?? 0) + (def.videos?.length ?? 0) + (def.inputs?.length ?? 0) > 0;
  const devices = mFirst(root, 'devices') ?? (needed ? ensureChild(root, 'devices', domainOrder) : undefined);
  if (!devices) return;
  if (def.emulator === undefined) removeChildren(devices, 'emulator');
  else setText(ensureChild(devices, 'emulator', DEVICES_ORDER), def.emulator);
  formatDisks(devices, def.disks);
  formatChardevs(devices, def.chardevs);
  formatInterfaces(devices, def.interfaces, DEVICES_ORDER);
  formatMachine(devices, def, DEVICES_ORDER);
  formatDisplay(devices, def, DEVICES_ORDER);
  formatHelperDevices(root, devices, def, DEVICES_ORDER, domainOrder);
}
