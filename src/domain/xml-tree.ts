/**
 * Reading and editing helpers for the `XmlElement` tree. Readers work on the readonly tree;
 * the formatter edits a deep clone of mutable elements and hands it back as `XmlElement`.
 */
import type { XmlComment, XmlElement, XmlNode, XmlText } from './domain-def.js';

export interface MutableElement {
  kind: 'element';
  name: string;
  attrs: Array<readonly [string, string]>;
  children: MutableNode[];
  line?: number;
}

export type MutableNode = MutableElement | XmlText | XmlComment;

/** The value of attribute `name`, or undefined. */
export function attr(el: XmlElement, name: string): string | undefined {
  for (const [k, v] of el.attrs) if (k === name) return v;
  return undefined;
}

/** Child elements, all or those named `name`. */
export function childElements(el: XmlElement, name?: string): XmlElement[] {
  const out: XmlElement[] = [];
  for (const c of el.children) if (c.kind === 'element' && (name === undefined || c.name === name)) out.push(c);
  return out;
}

/** The first child element named `name`. */
export function firstChild(el: XmlElement, name: string): XmlElement | undefined {
  for (const c of el.children) if (c.kind === 'element' && c.name === name) return c;
  return undefined;
}

/** The element's own text (text and CDATA children, concatenated). */
export function textOf(el: XmlElement): string {
  let s = '';
  for (const c of el.children) if (c.kind === 'text') s += c.text;
  return s;
}

/** Builds an element; attributes whose value is undefined are left out. */
export function elem(
  name: string,
  attrs: ReadonlyArray<readonly [string, string | undefined]> = [],
  children: MutableNode[] | string = [],
): MutableElement {
  const kept: Array<readonly [string, string]> = [];
  for (const [k, v] of attrs) if (v !== undefined) kept.push([k, v]);
  const kids: MutableNode[] = typeof children === 'string' ? [{ kind: 'text', text: children }] : children;
  return { kind: 'element', name, attrs: kept, children: kids };
}

/** A deep, mutable copy (line numbers dropped: they describe another document). */
export function cloneTree(el: XmlElement): MutableElement {
  return {
    kind: 'element',
    name: el.name,
    attrs: el.attrs.map(([k, v]) => [k, v] as const),
    children: el.children.map((c: XmlNode): MutableNode => (c.kind === 'element' ? cloneTree(c) : { ...c })),
  };
}

/** Mutable view of `childElements`. */
export function mChildren(el: MutableElement, name?: string): MutableElement[] {
  const out: MutableElement[] = [];
  for (const c of el.children) if (c.kind === 'element' && (name === undefined || c.name === name)) out.push(c);
  return out;
}

export function mFirst(el: MutableElement, name: string): MutableElement | undefined {
  for (const c of el.children) if (c.kind === 'element' && c.name === name) return c;
  return undefined;
}

/** Sets (keeping its position) or, with undefined, removes an attribute. */
export function setAttr(el: MutableElement, name: string, value: string | undefined): void {
  const i = el.attrs.findIndex(([k]) => k === name);
  if (value === undefined) {
    if (i !== -1) el.attrs.splice(i, 1);
  } else if (i === -1) {
    el.attrs.push([name, value]);
  } else if (el.attrs[i]?.[1] !== value) {
    el.attrs[i] = [name, value];
  }
}

/** Replaces the element's text, keeping its comments and child elements. */
export function setText(el: MutableElement, text: string): void {
  if (textOf(el) === text) return;
  const i = el.children.findIndex((c) => c.kind === 'text');
  const kept: MutableNode[] = el.children.filter((c) => c.kind !== 'text');
  kept.splice(i === -1 ? 0 : Math.min(i, kept.length), 0, { kind: 'text', text });
  el.children = kept;
}

export function removeChild(parent: MutableElement, child: MutableNode): void {
  const i = parent.children.indexOf(child);
  if (i !== -1) parent.children.splice(i, 1);
}

export function removeChildren(parent: MutableElement, name: string): void {
  parent.children = parent.children.filter((c) => !(c.kind === 'element' && c.name === name));
}

/**
 * Inserts `node` where a schema order puts it: after the last child that comes no later
 * in `order`, else before the first that comes later, else at the end. Unknown names
 * (not in `order`) never decide the position.
 */
export function insertOrdered(parent: MutableElement, node: MutableElement, order: readonly string[]): void {
  const rank = order.indexOf(node.name);
  if (rank === -1) {
    parent.children.push(node);
    return;
  }
  let after = -1;
  let before = -1;
  parent.children.forEach((c, i) => {
    if (c.kind !== 'element') return;
    const r = order.indexOf(c.name);
    if (r === -1) return;
    if (r <= rank) after = i;
    else if (before === -1) before = i;
  });
  const at = after !== -1 ? after + 1 : before !== -1 ? before : parent.children.length;
  parent.children.splice(at, 0, node);
}

/** The child named `name`, created in schema order when missing. */
export function ensureChild(parent: MutableElement, name: string, order: readonly string[]): MutableElement {
  const found = mFirst(parent, name);
  if (found) return found;
  const made = elem(name);
  insertOrdered(parent, made, order);
  return made;
}
