import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { sameData } from './same-data.js';

/** A small deterministic generator (xorshift), so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

function value(r: () => number, depth: number): unknown {
  const leaves: unknown[] = ['a', 'b', '', 0, 1, -0, NaN, true, false, undefined, null, '1'];
  const k = Math.floor(r() * (depth > 2 ? 1 : 3));
  if (k === 0) return leaves[Math.floor(r() * leaves.length)];
  if (k === 1) return Array.from({ length: Math.floor(r() * 3) }, () => value(r, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = Math.floor(r() * 3); i > 0; i--) o[['x', 'y', 'z'][Math.floor(r() * 3)]!] = value(r, depth + 1);
  return o;
}

/** A copy with one random change at most (or none), so equal and near-equal pairs both come up. */
function nearCopy(v: unknown, r: () => number): unknown {
  if (r() < 0.1) return value(r, 2);
  if (Array.isArray(v)) return v.map((x) => nearCopy(x, r));
  if (v !== null && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = nearCopy(x, r);
    if (r() < 0.05) delete o[Object.keys(o)[0] ?? 'x'];
    if (r() < 0.05) o.extra = undefined;
    return o;
  }
  return v;
}

describe('sameData', () => {
  it('agrees with util.isDeepStrictEqual on 20,000 pairs of plain data, equal and near-equal', () => {
    const r = rng(17);
    let equal = 0;
    for (let i = 0; i < 20_000; i++) {
      const a = value(r, 0);
      const b = nearCopy(a, r);
      const want = isDeepStrictEqual(a, b);
      if (want) equal++;
      assert.equal(sameData(a, b), want, `differs on ${JSON.stringify([a, b])}`);
    }
    assert.ok(equal > 2000 && equal < 18_000, `both outcomes come up (${equal} equal)`);
  });

  it('tells apart what JSON would not: -0 and 0, a key set to undefined and a key absent, a sparse array', () => {
    assert.equal(sameData({ a: 0 }, { a: -0 }), false);
    assert.equal(sameData({ a: undefined }, {}), false);
    assert.equal(sameData([undefined], [,]), isDeepStrictEqual([undefined], [,]));
    assert.equal(sameData(NaN, NaN), true);
    assert.equal(sameData({ a: [1, { b: 'c' }] }, { a: [1, { b: 'c' }] }), true);
  });

  it('leaves what is not plain data to util: prototypes, Maps, Buffers, symbol keys', () => {
    assert.equal(sameData(Object.create(null), {}), false);
    assert.equal(sameData(new Map([[1, 2]]), new Map([[1, 2]])), true);
    assert.equal(sameData(new Map([[1, 2]]), new Map([[1, 3]])), false);
    assert.equal(sameData(Buffer.from('a'), Buffer.from('b')), false);
    const s = Symbol('s');
    assert.equal(sameData({ [s]: 1 }, { [s]: 2 }), false);
    assert.equal(sameData([1, 2], { 0: 1, 1: 2, length: 2 }), false);
    // Holes in different places, with as many keys on each side
    assert.equal(sameData([, undefined], [undefined, ,]), isDeepStrictEqual([, undefined], [undefined, ,]));
    assert.equal(sameData(Object.assign([1], { a: 1 }), Object.assign([1], { b: 1 })), false);
  });
});
