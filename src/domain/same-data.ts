import { isDeepStrictEqual } from 'node:util';

/**
 * Deep equality of plain data (what the parsers make: plain objects, arrays, strings, numbers,
 * booleans, undefined), decided as util.isDeepStrictEqual decides it: the same prototype, the
 * same own enumerable keys, Object.is on the leaves. util's own comparison module is loaded on
 * its first call, ~1 ms of a fresh `define` or `start` (issue 17); anything not plain (a Map, a
 * Buffer, a class) still goes to it.
 */
export function sameData(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const proto = Object.getPrototypeOf(a) as unknown;
  if (proto !== Object.getPrototypeOf(b)) return false;
  if (proto === Array.prototype) {
    const x = a as unknown[];
    const y = b as unknown[];
    if (x.length !== y.length) return false;
    // A sparse array, or one with keys besides its indices, is not plain data: util decides.
    if (Object.keys(x).length !== x.length || Object.keys(y).length !== y.length) return isDeepStrictEqual(x, y);
    return x.every((v, i) => sameData(v, y[i]));
  }
  if (proto !== Object.prototype || Object.getOwnPropertySymbols(a).length + Object.getOwnPropertySymbols(b).length > 0) {
    return isDeepStrictEqual(a, b);
  }
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  return keys.every((k) => Object.prototype.hasOwnProperty.call(y, k) && sameData(x[k], y[k]));
}
