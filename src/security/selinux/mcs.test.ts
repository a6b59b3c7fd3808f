import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SvirtError } from '../../errors.js';
import { allocatePair, pairAt, pairCapacity, pairLevel, parseCategoryRange } from './mcs.js';
import { ListingMemoryReservations, MemoryReservations, uuidOf } from '../../../test/support/selinux.js';
import { seeded } from '../../../test/support/seeded.js';

describe('MCS category pairs', () => {
  it('parses ranges and computes n(n-1)/2', () => {
    assert.equal(pairCapacity(parseCategoryRange('c0.c1023')), 523_776);
    assert.equal(pairCapacity(parseCategoryRange('c10.c99')), 4_005);
    assert.deepEqual(parseCategoryRange('s0-s0:c0.c1023'), { sensitivity: 0, min: 0, max: 1023 });
    assert.deepEqual(parseCategoryRange('s0:c10.c99'), { sensitivity: 0, min: 10, max: 99 });
    for (const bad of ['c5', 'c1,c3', 's0', 'c9.c1', 'x']) {
      assert.throws(
        () => parseCategoryRange(bad),
        (e: unknown) => e instanceof SvirtError && e.code === 'SVIRT_ERR_USAGE',
        bad,
      );
    }
  });

  it('numbers every pair exactly once, sorted, distinct', () => {
    const range = parseCategoryRange('c10.c99');
    const seen = new Set<string>();
    for (let k = 0; k < pairCapacity(range); k++) {
      const [a, b] = pairAt(range, k);
      assert.ok(a >= 10 && b <= 99 && a < b, `pair ${k}: ${a},${b}`);
      seen.add(`${a},${b}`);
    }
    assert.equal(seen.size, 4005);
    const big = parseCategoryRange('c0.c1023');
    assert.deepEqual(pairAt(big, 0), [0, 1]);
    assert.deepEqual(pairAt(big, pairCapacity(big) - 1), [1022, 1023]);
    assert.equal(pairLevel(big, [344, 902]), 's0:c344,c902');
  });

  it('allocates 10,000 pairwise distinct labels in the default range', () => {
    const range = parseCategoryRange('c0.c1023');
    const res = new MemoryReservations();
    const levels = new Set<string>();
    const random = seeded(1);
    for (let i = 0; i < 10_000; i++) {
      const { level } = allocatePair(range, res, uuidOf(i), random, `g${i}`);
      assert.match(level, /^s0:c(\d+),c(\d+)$/);
      levels.add(level);
    }
    assert.equal(levels.size, 10_000);
    assert.equal(res.count('selinux'), 10_000);
  });

  it('fills c10.c99 to 4,005 and fails the 4,006th cleanly, even with a poor random source', () => {
    const range = parseCategoryRange('c10.c99');
    const cases = [
      { random: seeded(7), res: new MemoryReservations() },
      { random: () => 0.5, res: new MemoryReservations() },
      { random: seeded(8), res: new ListingMemoryReservations() },
    ];
    for (const { random, res } of cases) {
      for (let i = 0; i < 4005; i++) allocatePair(range, res, uuidOf(i), random, `g${i}`);
      assert.equal(res.count('selinux'), 4005);
      assert.throws(
        () => allocatePair(range, res, uuidOf(4005), random, 'g4005'),
        (e: unknown) =>
          e instanceof SvirtError &&
          e.code === 'SVIRT_ERR_LABEL_EXHAUSTED' &&
          e.message === 'cannot allocate an SELinux label for guest "g4005": all 4005 category pairs of s0:c10.c99 are in use',
      );
      assert.equal(res.count('selinux'), 4005, 'the failed allocation reserved nothing');
      // One guest stops: its pair is found again.
      res.releaseGuest(uuidOf(1234));
      assert.match(allocatePair(range, res, uuidOf(4006), random, 'g4006').level, /^s0:c\d+,c\d+$/);
    }
  });
});
