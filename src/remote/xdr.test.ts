import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SvirtError } from '../errors.js';
import { toWireError, VirErr } from './errors.js';
import { readCharArray, readDomain, readError, writeCharArray, writeDomain, writeError } from './protocol.js';
import { XdrError, XdrReader, XdrWriter } from './xdr.js';

describe('XdrWriter / XdrReader', () => {
  it('round-trips every type with RFC 4506 encoding (big-endian, 4-byte padding)', () => {
    const w = new XdrWriter(4);
    w.int(-2)
      .uint(0xffffffff)
      .hyper(-(2n ** 63n))
      .uhyper(2n ** 64n - 1n)
      .bool(true)
      .string('abcde', 10)
      .opaqueFixed(Buffer.from([1, 2, 3]));
    w.opaqueVar(Buffer.from([9]), 4)
      .optional<string>(undefined, (x, v) => x.string(v, 9))
      .optional('z', (x, v) => x.string(v, 9));
    w.array([1, 2, 3], 3, (x, v) => x.int(v));
    const buf = w.toBuffer();
    assert.equal(buf.length % 4, 0);
    assert.deepEqual([...buf.subarray(0, 4)], [0xff, 0xff, 0xff, 0xfe]);
    const r = new XdrReader(buf);
    assert.equal(r.int(), -2);
    assert.equal(r.uint(), 0xffffffff);
    assert.equal(r.hyper(), -(2n ** 63n));
    assert.equal(r.uhyper(), 2n ** 64n - 1n);
    assert.equal(r.bool(), true);
    assert.equal(r.string(10), 'abcde');
    assert.deepEqual([...r.opaqueFixed(3)], [1, 2, 3]);
    assert.deepEqual([...r.opaqueVar(4)], [9]);
    assert.equal(
      r.optional((x) => x.string(9)),
      undefined,
    );
    assert.equal(
      r.optional((x) => x.string(9)),
      'z',
    );
    assert.deepEqual(
      r.array(3, (x) => x.int()),
      [1, 2, 3],
    );
    r.done();
  });

  it('refuses absurd lengths before allocating, truncated buffers and trailing bytes', () => {
    const len = (n: number) => new XdrWriter().uint(n).toBuffer();
    assert.throws(
      () => new XdrReader(len(0xffffffff)).string(1024),
      (e: unknown) => e instanceof XdrError && /exceeds its maximum 1024/.test(e.message),
    );
    assert.throws(() => new XdrReader(len(100)).string(1024), /runs past the end/);
    assert.throws(() => new XdrReader(len(0x40000000)).array(0xffffffff, (x) => x.int()), /runs past the end/);
    assert.throws(() => new XdrReader(Buffer.from([0, 0, 0])).int(), /truncated int/);
    assert.throws(() => new XdrReader(Buffer.concat([len(3), Buffer.from('abc')])).string(8), /truncated/, 'padding is required');
    assert.throws(() => new XdrReader(new XdrWriter().int(2).toBuffer()).bool(), /bool must be 0 or 1/);
    assert.throws(() => new XdrReader(new XdrWriter().opaqueVar(Buffer.from('a\0b'), 8).toBuffer()).string(8), /NUL/);
    const r = new XdrReader(new XdrWriter().int(1).int(2).toBuffer());
    r.int();
    assert.throws(() => r.done(), /4 unexpected trailing bytes/);
  });

  it('refuses to write values outside their type', () => {
    assert.throws(() => new XdrWriter().int(2 ** 31), RangeError);
    assert.throws(() => new XdrWriter().uint(-1), RangeError);
    assert.throws(() => new XdrWriter().uhyper(-1n), RangeError);
    assert.throws(() => new XdrWriter().string('abc', 2), RangeError);
    assert.throws(() => new XdrWriter().array([1, 2], 1, (x, v) => x.int(v)), RangeError);
  });
});

describe('remote protocol structs', () => {
  it('encodes remote_nonnull_domain with a 16-byte uuid', () => {
    const w = new XdrWriter();
    writeDomain(w, { name: 'g', uuid: '67a72208-12ab-412f-b07c-5409b1a3126b', id: -1 });
    assert.equal(w.length, 4 + 4 + 16 + 4);
    assert.deepEqual(readDomain(new XdrReader(w.toBuffer())), {
      name: 'g',
      uuid: '67a72208-12ab-412f-b07c-5409b1a3126b',
      id: -1,
    });
  });

  it('encodes char<N> like rpcgen: one 4-byte unit per char, NUL included', () => {
    const w = new XdrWriter();
    writeCharArray(w, 'dac', 257);
    assert.equal(w.length, 4 + 4 * 4);
    assert.equal(readCharArray(new XdrReader(w.toBuffer()), 257), 'dac');
    assert.throws(() => writeCharArray(new XdrWriter(), 'x'.repeat(300), 257), RangeError);
  });

  it('maps svirt errors to libvirt codes with libvirt message prefixes', () => {
    const noDom = toWireError(new SvirtError('SVIRT_ERR_NO_DOMAIN', "Domain not found: no domain with matching name 'x'"));
    assert.equal(noDom.code, VirErr.NO_DOMAIN);
    assert.equal(noDom.message, "Domain not found: no domain with matching name 'x'", 'no doubled prefix');
    const invalid = toWireError(new SvirtError('SVIRT_ERR_OPERATION_INVALID', "domain 'x' is not running"));
    assert.equal(invalid.code, VirErr.OPERATION_INVALID);
    assert.equal(invalid.message, "Requested operation is not valid: domain 'x' is not running");
    assert.equal(toWireError(new SvirtError('SVIRT_ERR_XML_MALFORMED', 'bad')).code, VirErr.XML_ERROR);
    assert.equal(toWireError(new Error('boom')).code, VirErr.INTERNAL_ERROR);
    const w = new XdrWriter();
    writeError(w, invalid);
    const back = readError(new XdrReader(w.toBuffer()));
    assert.equal(back.code, VirErr.OPERATION_INVALID);
    assert.equal(back.message, invalid.message);
  });
});
