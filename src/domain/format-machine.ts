/**
 * Writes the machine devices of a `DomainDef` (controllers, rng, memballoon, disks' PCI
 * addresses) into a clone of its `<devices>` element. A field left undefined leaves its
 * elements as they are; unknown attributes and children of kept elements stay.
 */
import { sameData } from './same-data.js';
import type { ControllerDef, DomainDef, FirmwareDef, MemballoonDef, PciAddress, RngDef } from './domain-def.js';
import { parseFirmware, parsePciAddress } from './parse-machine.js';
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

const CONTROLLER_ORDER = ['model', 'driver', 'target', 'alias', 'address'] as const;
const RNG_ORDER = ['rate', 'backend', 'alias', 'address'] as const;
const BALLOON_ORDER = ['stats', 'alias', 'address'] as const;
const DISK_TAIL = ['alias', 'address'] as const;

const hex = (n: number, w: number): string => `0x${n.toString(16).padStart(w, '0')}`;

/** libvirt's `<address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>`. */
export function pciAddressElement(a: PciAddress): MutableElement {
  return elem('address', [
    ['type', 'pci'],
    ['domain', hex(a.domain, 4)],
    ['bus', hex(a.bus, 2)],
    ['slot', hex(a.slot, 2)],
    ['function', hex(a.function, 1)],
    ['multifunction', a.multifunction ? 'on' : undefined],
  ]);
}

function readAddress(el: MutableElement): PciAddress | undefined {
  try {
    return parsePciAddress(el);
  } catch {
    return undefined; // unreadable: rewritten from the typed field
  }
}

/** Sets (or removes) the PCI `<address>` of a device element; another address type is left alone when none is set. */
export function applyAddress(el: MutableElement, a: PciAddress | undefined, order: readonly string[]): void {
  const cur = mFirst(el, 'address');
  if (sameData(readAddress(el), a)) return;
  if (a === undefined) {
    if (cur && attr(cur, 'type') === 'pci') removeChild(el, cur);
    return;
  }
  if (cur) removeChild(el, cur);
  insertOrdered(el, pciAddressElement(a), order);
}

function applyController(el: MutableElement, c: ControllerDef): MutableElement {
  setAttr(el, 'type', c.type);
  setAttr(el, 'index', String(c.index));
  setAttr(el, 'model', c.model);
  if (c.chassis !== undefined || c.port !== undefined) {
    const t = ensureChild(el, 'target', CONTROLLER_ORDER);
    if (c.chassis !== undefined) setAttr(t, 'chassis', String(c.chassis));
    if (c.port !== undefined) setAttr(t, 'port', `0x${c.port.toString(16)}`);
  }
  applyAddress(el, c.address, CONTROLLER_ORDER);
  return el;
}

/** Controllers matched by type and index: kept in place and updated, removed, or added after the last controller. */
function formatControllers(devices: MutableElement, controllers: readonly ControllerDef[], order: readonly string[]): void {
  const existing = new Map<string, MutableElement>();
  for (const el of mChildren(devices, 'controller')) existing.set(`${attr(el, 'type') ?? ''}/${attr(el, 'index') ?? ''}`, el);
  const first = devices.children.findIndex((c) => c.kind === 'element' && c.name === 'controller');
  removeChildren(devices, 'controller');
  const out = controllers.map((c) => applyController(existing.get(`${c.type}/${c.index}`) ?? elem('controller'), c));
  if (first !== -1) devices.children.splice(first, 0, ...out);
  else for (const el of out) insertOrdered(devices, el, order);
}

function applyRng(el: MutableElement, r: RngDef): MutableElement {
  setAttr(el, 'model', r.model);
  const backend = ensureChild(el, 'backend', RNG_ORDER);
  setAttr(backend, 'model', r.backend.model);
  if (r.backend.model === 'random') setText(backend, r.backend.path);
  else backend.children = backend.children.filter((c) => c.kind !== 'text');
  applyAddress(el, r.address, RNG_ORDER);
  return el;
}

function formatRngs(devices: MutableElement, rngs: readonly RngDef[], order: readonly string[]): void {
  const pool = mChildren(devices, 'rng');
  rngs.forEach((r, i) => {
    const old = pool[i];
    if (old) applyRng(old, r);
    else insertOrdered(devices, applyRng(elem('rng'), r), order);
  });
  for (const el of pool.slice(rngs.length)) removeChild(devices, el);
}

function formatBalloon(devices: MutableElement, b: MemballoonDef, order: readonly string[]): void {
  const el = mFirst(devices, 'memballoon') ?? ensureChild(devices, 'memballoon', order);
  setAttr(el, 'model', b.model);
  applyAddress(el, b.address, BALLOON_ORDER);
}

/** Applies controllers, rngs, memballoon and disk PCI addresses of `def` to `devices`. */
export function formatMachine(devices: MutableElement, def: DomainDef, order: readonly string[]): void {
  if (def.controllers !== undefined) formatControllers(devices, def.controllers, order);
  if (def.rngs !== undefined) formatRngs(devices, def.rngs, order);
  if (def.memballoon !== undefined) formatBalloon(devices, def.memballoon, order);
  const disks = new Map(def.disks.map((d) => [d.target.dev, d]));
  for (const el of mChildren(devices, 'disk')) {
    const target = mFirst(el, 'target');
    const disk = disks.get((target && attr(target, 'dev')) ?? '');
    if (disk) applyAddress(el, disk.address, [...DISK_TAIL]);
  }
}

/** Whether `formatMachine` has anything to write (so an empty definition gets no `<devices>`). */
export function hasMachineDevices(def: DomainDef): boolean {
  return (def.controllers?.length ?? 0) > 0 || (def.rngs?.length ?? 0) > 0 || def.memballoon !== undefined;
}

/** `<os firmware>` and its `<firmware><feature/></firmware>`: kept when unchanged, else rewritten; absent removes both. */
export function formatFirmware(os: MutableElement, fw: FirmwareDef | undefined, order: readonly string[]): void {
  let cur: FirmwareDef | undefined;
  try {
    cur = parseFirmware(os);
  } catch {
    cur = undefined; // unreadable: rewritten
  }
  if (sameData(cur, fw)) return;
  setAttr(os, 'firmware', fw?.kind);
  removeChildren(os, 'firmware');
  if (!fw || fw.features.length === 0) return;
  const kids = fw.features.map((f) =>
    elem('feature', [
      ['enabled', f.enabled ? 'yes' : 'no'],
      ['name', f.name],
    ]),
  );
  insertOrdered(os, elem('firmware', [], kids), order);
}
