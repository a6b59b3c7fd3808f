/**
 * SELinux security contexts (`user:role:type:range`) and MLS/MCS levels: parsing,
 * validation and the canonical form the kernel prints. Pure functions, no I/O.
 */
import { SvirtError } from '../../errors.js';

/** A parsed `user:role:type:range` context. */
export interface SelinuxContext {
  readonly user: string;
  readonly role: string;
  readonly type: string;
  /** The MLS range in canonical form, e.g. `s0:c1,c2` or `s0-s0:c0.c1023`. */
  readonly range: string;
}

/** One MLS level: a sensitivity and a set of categories. */
export interface SelinuxLevel {
  readonly sensitivity: number;
  /** Sorted, without duplicates. */
  readonly categories: readonly number[];
}

const IDENT = /^[A-Za-z0-9_.-]+$/;
const SENS = /^s(\d{1,4})$/;
const CAT = /^c(\d{1,5})$/;

function invalid(what: string, text: string, why: string): SvirtError {
  return new SvirtError('SVIRT_ERR_XML_INVALID', `invalid SELinux ${what} "${text}": ${why}`, {
    details: { [what]: text },
  });
}

/** Parses one category set (`c0,c3.c5`) into sorted, unique numbers. */
function parseCategories(text: string, whole: string): number[] {
  const out = new Set<number>();
  for (const item of text.split(',')) {
    const bounds = item.split('.');
    if (bounds.length > 2) throw invalid('level', whole, `bad category "${item}"`);
    const nums = bounds.map((b) => {
      const m = CAT.exec(b);
      if (m === null || m[1] === undefined) throw invalid('level', whole, `bad category "${item}"`);
      return Number(m[1]);
    });
    const lo = nums[0] ?? 0;
    const hi = nums[1] ?? lo;
    if (hi < lo) throw invalid('level', whole, `category range "${item}" is reversed`);
    for (let c = lo; c <= hi; c++) out.add(c);
  }
  return [...out].sort((a, b) => a - b);
}

/** Parses `s0` or `s0:c1,c2` (a single level, no `-`). */
export function parseLevel(text: string): SelinuxLevel {
  const colon = text.indexOf(':');
  const sensText = colon < 0 ? text : text.slice(0, colon);
  const m = SENS.exec(sensText);
  if (m === null || m[1] === undefined) throw invalid('level', text, `bad sensitivity "${sensText}"`);
  const categories = colon < 0 ? [] : parseCategories(text.slice(colon + 1), text);
  return { sensitivity: Number(m[1]), categories };
}

/** The kernel's spelling of a category set: `c1,c2`, runs of three or more as `c3.c9`. */
export function formatCategories(categories: readonly number[]): string {
  const parts: string[] = [];
  let i = 0;
  while (i < categories.length) {
    let j = i;
    while (j + 1 < categories.length && categories[j + 1] === (categories[j] ?? 0) + 1) j++;
    const lo = categories[i] ?? 0;
    const hi = categories[j] ?? 0;
    if (j - i >= 2) parts.push(`c${lo}.c${hi}`);
    else for (let k = i; k <= j; k++) parts.push(`c${categories[k] ?? 0}`);
    i = j + 1;
  }
  return parts.join(',');
}

export function formatLevel(level: SelinuxLevel): string {
  const cats = formatCategories(level.categories);
  return cats === '' ? `s${level.sensitivity}` : `s${level.sensitivity}:${cats}`;
}

/** Whether `high` dominates `low` (same or higher sensitivity, superset of categories). */
export function dominates(high: SelinuxLevel, low: SelinuxLevel): boolean {
  if (high.sensitivity < low.sensitivity) return false;
  const set = new Set(high.categories);
  return low.categories.every((c) => set.has(c));
}

/** Parses and canonicalises an MLS range: `s0`, `s0:c1,c2`, `s0-s0:c0.c1023`. */
export function canonicalRange(text: string): string {
  const dash = text.indexOf('-');
  if (dash < 0) return formatLevel(parseLevel(text));
  const low = parseLevel(text.slice(0, dash));
  const high = parseLevel(text.slice(dash + 1));
  if (!dominates(high, low)) throw invalid('range', text, 'the high level does not dominate the low level');
  const lo = formatLevel(low);
  const hi = formatLevel(high);
  return lo === hi ? lo : `${lo}-${hi}`;
}

/** The low level of a range (what a file created by the process gets). */
export function lowLevel(range: string): SelinuxLevel {
  const dash = range.indexOf('-');
  return parseLevel(dash < 0 ? range : range.slice(0, dash));
}

/** The high level of a range (the clearance). */
export function highLevel(range: string): SelinuxLevel {
  const dash = range.indexOf('-');
  return parseLevel(dash < 0 ? range : range.slice(dash + 1));
}

/**
 * Parses a full context. sVirt needs MCS, so the range is mandatory. Rejects anything
 * that could not be a context (whitespace, NUL, quotes), since labels end up in xattrs,
 * argv and the launcher spec.
 */
export function parseContext(text: string): SelinuxContext {
  const parts = text.split(':');
  if (parts.length < 4) throw invalid('context', text, 'expected user:role:type:range');
  const [user = '', role = '', type = ''] = parts;
  for (const [name, value] of [
    ['user', user],
    ['role', role],
    ['type', type],
  ] as const) {
    if (!IDENT.test(value)) throw invalid('context', text, `bad ${name} "${value}"`);
  }
  return { user, role, type, range: canonicalRange(parts.slice(3).join(':')) };
}

export function formatContext(ctx: SelinuxContext): string {
  return `${ctx.user}:${ctx.role}:${ctx.type}:${ctx.range}`;
}

/** `base` with its range replaced, e.g. the domain context at a generated level. */
export function withRange(base: SelinuxContext, range: string): string {
  return formatContext({ ...base, range: canonicalRange(range) });
}

/** True when `text` parses as a context. */
export function isContext(text: string): boolean {
  try {
    parseContext(text);
    return true;
  } catch {
    // Only a yes/no is wanted here; the parse error is reported where the label is used.
    return false;
  }
}
