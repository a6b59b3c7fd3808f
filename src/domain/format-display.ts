/**
 * Writes the typed `<graphics>`, `<video>` and `<input>` back into the kept `<devices>`:
 * each list matched by position; an element whose parse already equals its def is left as
 * written, a changed one gets its typed attributes set (others kept), new ones are made.
 */
import { isDeepStrictEqual } from 'node:util';
import type { GraphicsDef, InputDef, VideoDef } from './display-def.js';
import type { DomainDef } from './domain-def.js';
import { applyAddress } from './format-machine.js';
import { parseGraphics, parseInput, parseVideo } from './parse-display.js';
import type { MutableElement } from './xml-tree.js';
import { elem, ensureChild, insertOrdered, mChildren, removeChild, removeChildren, setAttr } from './xml-tree.js';

function parsed<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined; // an element the typed field replaced with something else
  }
}

function listenAttrs(g: GraphicsDef): Array<readonly [string, string | undefined]> {
  switch (g.listen.type) {
    case 'address':
      return [
        ['type', 'address'],
        ['address', g.listen.address],
      ];
    case 'socket':
      return [
        ['type', 'socket'],
        ['socket', g.listen.socket],
      ];
    case 'none':
      return [['type', 'none']];
  }
}

function applyGraphics(el: MutableElement, g: GraphicsDef): void {
  setAttr(el, 'type', g.type);
  const tcp = g.listen.type === 'address';
  setAttr(el, 'port', tcp ? String(g.port ?? -1) : undefined);
  setAttr(el, 'autoport', tcp ? (g.autoport ? 'yes' : 'no') : undefined);
  setAttr(el, 'listen', g.listen.type === 'address' ? g.listen.address : undefined);
  setAttr(el, 'socket', undefined);
  setAttr(el, 'passwd', g.passwd);
  removeChildren(el, 'listen');
  el.children.unshift(elem('listen', listenAttrs(g)));
}

const VIDEO_ORDER = ['model', 'driver', 'alias', 'address'] as const;
const INPUT_ORDER = ['source', 'driver', 'alias', 'address'] as const;

function applyVideo(el: MutableElement, v: VideoDef): void {
  const model = ensureChild(el, 'model', VIDEO_ORDER);
  setAttr(model, 'type', v.model);
  setAttr(model, 'primary', v.primary === undefined ? undefined : v.primary ? 'yes' : 'no');
  applyAddress(el, v.address, VIDEO_ORDER);
}

function applyInput(el: MutableElement, i: InputDef): void {
  setAttr(el, 'type', i.type);
  setAttr(el, 'bus', i.bus);
  applyAddress(el, i.address, INPUT_ORDER);
}

function formatList<T>(
  devices: MutableElement,
  name: string,
  defs: readonly T[],
  parse: (el: MutableElement) => T,
  apply: (el: MutableElement, d: T) => void,
  order: readonly string[],
): void {
  const els = mChildren(devices, name);
  defs.forEach((d, i) => {
    const old = els[i];
    if (
      old &&
      isDeepStrictEqual(
        parsed(() => parse(old)),
        d,
      )
    )
      return;
    const el = old ?? elem(name);
    apply(el, d);
    if (!old) insertOrdered(devices, el, order);
  });
  for (const el of els.slice(defs.length)) removeChild(devices, el);
}

/** Applies `def.graphics`, `def.videos` and `def.inputs` to `devices`. */
export function formatDisplay(devices: MutableElement, def: DomainDef, order: readonly string[]): void {
  formatList(devices, 'graphics', def.graphics ?? [], parseGraphics, applyGraphics, order);
  formatList(devices, 'video', def.videos ?? [], parseVideo, applyVideo, order);
  formatList(devices, 'input', def.inputs ?? [], parseInput, applyInput, order);
}
