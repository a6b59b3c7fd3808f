/**
 * Shared pieces of the domain XML reader: error constructors that name the element and
 * its line, single-element lookups, yes/no attributes and path validation.
 */
import { SvirtError } from '../errors.js';
import type { XmlElement } from './domain-def.js';
import { attr, childElements, textOf } from './xml-tree.js';

/** A value as it appears in a message: quoted, control characters escaped. */
export function quote(s: string): string {
  return JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}...` : s);
}

/** `<disk>` or `<disk> at line 12`. */
export function where(el: XmlElement): string {
  return el.line === undefined ? `<${el.name}>` : `<${el.name}> at line ${el.line}`;
}

function located(el: XmlElement, extra: Record<string, unknown>): Record<string, unknown> {
  return el.line === undefined ? { element: el.name, ...extra } : { element: el.name, line: el.line, ...extra };
}

export function invalid(el: XmlElement, reason: string, extra: Record<string, unknown> = {}): SvirtError {
  return new SvirtError('SVIRT_ERR_XML_INVALID', `invalid domain XML: ${where(el)}: ${reason}`, {
    details: located(el, extra),
  });
}

export function unsupported(el: XmlElement, reason: string, extra: Record<string, unknown> = {}): SvirtError {
  return new SvirtError('SVIRT_ERR_XML_UNSUPPORTED', `unsupported domain XML: ${where(el)}: ${reason}`, {
    details: located(el, extra),
  });
}

/** The only child named `name`; two of them is an error (which one would count is ambiguous). */
export function single(parent: XmlElement, name: string): XmlElement | undefined {
  const found = childElements(parent, name);
  const second = found[1];
  if (second) throw invalid(second, `more than one <${name}> in <${parent.name}>`);
  return found[0];
}

/** Text of the only child `name`; undefined when the child is missing or empty. */
export function singleText(parent: XmlElement, name: string): string | undefined {
  const el = single(parent, name);
  if (!el) return undefined;
  const t = textOf(el);
  return t === '' ? undefined : t;
}

/** A yes/no attribute; undefined when absent. */
export function yesNo(el: XmlElement, name: string): boolean | undefined {
  const v = attr(el, name);
  if (v === undefined) return undefined;
  if (v === 'yes') return true;
  if (v === 'no') return false;
  throw invalid(el, `${name}=${quote(v)} must be 'yes' or 'no'`);
}

/** An attribute restricted to `allowed`; undefined when absent. */
export function oneOf<T extends string>(el: XmlElement, name: string, allowed: readonly T[]): T | undefined {
  const v = attr(el, name);
  if (v === undefined) return undefined;
  if ((allowed as readonly string[]).includes(v)) return v as T;
  throw invalid(el, `${name}=${quote(v)} must be one of ${allowed.join(', ')}`);
}

/** A non-negative decimal integer no larger than `max`. */
export function parseUnsigned(el: XmlElement, raw: string, what: string, max = 2 ** 31 - 1): number {
  const t = raw.trim();
  if (!/^[0-9]{1,16}$/.test(t)) throw invalid(el, `${what} ${quote(raw)} is not a non-negative integer`, { value: raw });
  const n = Number(t);
  if (n > max) throw invalid(el, `${what} ${t} is larger than ${max}`, { value: raw });
  return n;
}

export const PATH_MAX = 4096;

/**
 * Why `path` may not be given to QEMU or a security driver, or undefined when it is fine:
 * it must be absolute, at most PATH_MAX bytes, free of control characters (NUL, newline,
 * ...). `/./` and `/../` are allowed, as libvirt allows them: drivers label and write rules
 * for the path as the kernel resolves it.
 */
export function pathProblem(path: string): string | undefined {
  if (path === '') return 'it is empty';
  if (!path.startsWith('/')) return 'it is not absolute';
  const ctl = /[\u0000-\u001f\u007f-\u009f]/.exec(path);
  if (ctl) {
    const c = ctl[0].charCodeAt(0);
    const name =
      c === 0 ? 'NUL' : c === 10 ? 'a newline' : `control character U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
    return `it contains ${name}`;
  }
  if (Buffer.byteLength(path, 'utf8') > PATH_MAX) return `it is longer than ${PATH_MAX} bytes`;
  return undefined;
}

/** Throws SVIRT_ERR_PATH_INVALID naming the path and what it was for. */
export function checkPath(path: string, what: string, el?: XmlElement): string {
  const problem = pathProblem(path);
  if (problem === undefined) return path;
  const at = el === undefined ? '' : ` (${where(el)})`;
  throw new SvirtError('SVIRT_ERR_PATH_INVALID', `invalid path ${quote(path)} for ${what}${at}: ${problem}`, {
    details:
      el === undefined ? { path, what } : { path, what, element: el.name, ...(el.line === undefined ? {} : { line: el.line }) },
  });
}
