/**
 * InterfaceDefs → `<interface>` elements of the kept `<devices>` tree. An element is matched
 * by its MAC address (else by position); one whose reading equals the typed NIC stays as
 * written, a changed one gets its known children rewritten in libvirt's order and keeps
 * the rest (`<address>`).
 */
import { isDeepStrictEqual } from 'node:util';
import type { InterfaceDef, PortForwardDef } from './interface-def.js';
import { pciAddressElement } from './format-machine.js';
import { parseInterface } from './parse-interface.js';
import type { MutableElement } from './xml-tree.js';
import { attr, elem, insertOrdered, mChildren, mFirst, removeChildren, setAttr } from './xml-tree.js';

const ORDER = [
  'mac',
  'source',
  'virtualport',
  'target',
  'model',
  'driver',
  'backend',
  'portForward',
  'link',
  'alias',
  'address',
] as const satisfies readonly string[];

/** The elements svirt writes; everything else in an `<interface>` is left where it is. */
const OWN = ['mac', 'source', 'target', 'model', 'driver', 'backend', 'portForward', 'link', 'alias'] as const;

function portForwardElement(p: PortForwardDef): MutableElement {
  return elem(
    'portForward',
    [
      ['proto', p.proto],
      ['address', p.address],
      ['dev', p.dev],
    ],
    p.ranges.map((r) =>
      elem('range', [
        ['start', String(r.start)],
        ['end', r.end === undefined ? undefined : String(r.end)],
        ['to', r.to === undefined ? undefined : String(r.to)],
        ['exclude', r.exclude === undefined ? undefined : r.exclude ? 'yes' : 'no'],
      ]),
    ),
  );
}

/** The known children of one NIC, in libvirt's order. */
function ownChildren(n: InterfaceDef): MutableElement[] {
  const out: MutableElement[] = [];
  if (n.mac !== undefined) out.push(elem('mac', [['address', n.mac]]));
  if (n.source !== undefined) out.push(elem('source', [[n.type === 'bridge' ? 'bridge' : 'network', n.source]]));
  if (n.target !== undefined) out.push(elem('target', [['dev', n.target]]));
  if (n.model !== undefined) out.push(elem('model', [['type', n.model]]));
  if (n.driver !== undefined) out.push(elem('driver', [['name', n.driver]]));
  if (n.backend !== undefined) out.push(elem('backend', [['type', n.backend]]));
  out.push(...n.portForwards.map(portForwardElement));
  if (n.link !== undefined) out.push(elem('link', [['state', n.link]]));
  if (n.alias !== undefined) out.push(elem('alias', [['name', n.alias]]));
  if (n.address !== undefined) out.push(pciAddressElement(n.address));
  return out;
}

function current(el: MutableElement): InterfaceDef | undefined {
  try {
    return parseInterface(el, false);
  } catch {
    return undefined; // a hand-built tree may hold anything: it is rewritten
  }
}

function apply(el: MutableElement | undefined, n: InterfaceDef): MutableElement {
  const macEl = el ? mFirst(el, 'mac') : undefined;
  const macAsWritten = macEl ? attr(macEl, 'address') : undefined;
  if (el && macAsWritten === n.mac && isDeepStrictEqual(current(el), n)) return el;
  const out = el ?? elem('interface');
  setAttr(out, 'type', n.type);
  for (const name of OWN) removeChildren(out, name);
  // A PCI address svirt knows replaces the element; any other kind of address stays as written.
  if (n.address !== undefined) removeChildren(out, 'address');
  for (const c of ownChildren(n)) insertOrdered(out, c, ORDER);
  return out;
}

function macOf(el: MutableElement): string | undefined {
  const m = mFirst(el, 'mac');
  return m ? attr(m, 'address')?.toLowerCase() : undefined;
}

/**
 * Writes `nics` as the `<interface>` children of `devices`, at the place of the first one
 * (else in libvirt's device order).
 */
export function formatInterfaces(devices: MutableElement, nics: readonly InterfaceDef[], devicesOrder: readonly string[]): void {
  const pool = mChildren(devices, 'interface');
  const first = devices.children.findIndex((c) => c.kind === 'element' && c.name === 'interface');
  const used = new Set<MutableElement>();
  const byMac = (mac: string | undefined): MutableElement | undefined =>
    mac === undefined ? undefined : pool.find((el) => !used.has(el) && macOf(el) === mac);
  const matched = nics.map((n) => {
    const el = byMac(n.mac);
    if (el) used.add(el);
    return el;
  });
  const out = nics.map((n, i) => {
    let el = matched[i];
    if (!el) {
      el = pool.find((p) => !used.has(p) && !matched.includes(p) && (macOf(p) === undefined || n.mac === undefined));
      if (el) used.add(el);
    }
    return apply(el, n);
  });
  removeChildren(devices, 'interface');
  if (first !== -1) devices.children.splice(Math.min(first, devices.children.length), 0, ...out);
  else for (const el of out) insertOrdered(devices, el, devicesOrder);
}
