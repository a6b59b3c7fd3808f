import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fingerprintHex, fnv1a32 } from './fingerprint.js';
import { fnv1a32Native } from './native.js';

describe('fingerprint: the C lane is the JS one', () => {
  it('agrees bit for bit on ASCII, non-Latin text, lone surrogates, NULs and long input', () => {
    const texts = [
      '',
      'a',
      'abc',
      'landlock:abi7',
      'é\u00ff\u0100\u4e2d\u6587',
      '\ud83d\ude00 pair and a lone \ud800 and \udfff',
      'a\u0000b\u0000',
      JSON.stringify({
        rules: Array.from({ length: 400 }, (_, i) => ({ path: `/var/lib/svirt/images/disk-${i}.qcow2`, access: i })),
      }),
    ];
    let seed = 1;
    for (let n = 0; n < 200; n++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      const len = seed % 300;
      texts.push(String.fromCharCode(...Array.from({ length: len }, (_, i) => (Math.imul(seed, i + 7) >>> 7) & 0xffff)));
    }
    for (const t of texts) {
      for (const basis of [0x811c9dc5, 0x050c5d1f, 0, 0xffffffff]) {
        assert.equal(fnv1a32Native(t, basis), fnv1a32(t, basis), `basis ${basis}, text of ${t.length} units`);
      }
      assert.equal(fingerprintHex(t, fnv1a32Native), fingerprintHex(t));
    }
    assert.equal(fnv1a32('abc'), 440920331, 'the FNV-1a of "abc" over UTF-16 units, as published for bytes');
  });

  it('refuses what is not a string or a number', () => {
    const native = fnv1a32Native as unknown as (t: unknown, b: unknown) => number;
    assert.throws(() => native(42, 1), /text must be a string/);
    assert.throws(() => native('x', 'y'), /basis must be a number/);
  });
});
