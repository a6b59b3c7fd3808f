import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatPoolXml, objectNameProblem, parsePoolXml, parseVolumeXml } from './storage-xml.js';
import { objectDiff } from '../remote/object-events.js';

describe('storage pool and volume XML', () => {
  it('parses a dir pool and formats it back', () => {
    const p = parsePoolXml(
      `<pool type='dir'><name>vm</name><uuid>0f8e6c6e-8d0e-4f0b-9c55-3c1f8d1e2a01</uuid><source/><target><path>/srv/vm//</path><permissions><mode>0750</mode><owner>0</owner><group>107</group></permissions></target></pool>`,
    );
    assert.deepEqual(p, {
      name: 'vm',
      uuid: '0f8e6c6e-8d0e-4f0b-9c55-3c1f8d1e2a01',
      path: '/srv/vm',
      mode: 0o750,
      owner: 0,
      group: 107,
    });
    assert.deepEqual(parsePoolXml(formatPoolXml(p)), p);
  });

  it('refuses other pool types, relative or dotted paths, bad names and unknown elements', () => {
    assert.throws(
      () => parsePoolXml(`<pool type='logical'><name>x</name><target><path>/x</path></target></pool>`),
      /pool type "logical"/,
    );
    assert.throws(() => parsePoolXml(`<pool type='dir'><name>x</name><target><path>rel</path></target></pool>`), /path/);
    assert.throws(
      () => parsePoolXml(`<pool type='dir'><name>x</name><target><path>/a/../etc</path></target></pool>`),
      /\. or \.\./,
    );
    assert.throws(
      () => parsePoolXml(`<pool type='dir'><name>a/b</name><target><path>/x</path></target></pool>`),
      /contains '\/'/,
    );
    assert.throws(
      () =>
        parsePoolXml(`<pool type='dir'><name>x</name><source><host name='h'/></source><target><path>/x</path></target></pool>`),
      /<host>/,
    );
    assert.throws(() => parsePoolXml(`<pool type='dir'><name>x</name><target><path>/</path></target></pool>`), /root directory/);
  });

  it('reads volume sizes in libvirt units and the declared format', () => {
    assert.deepEqual(
      parseVolumeXml(
        `<volume><name>a.qcow2</name><capacity unit='G'>1</capacity><allocation>0</allocation><target><format type='qcow2'/><features><lazy_refcounts/></features></target></volume>`,
      ),
      {
        name: 'a.qcow2',
        capacity: 1073741824,
        format: 'qcow2',
        lazyRefcounts: true,
      },
    );
    assert.equal(parseVolumeXml(`<volume><name>b</name><capacity unit='MB'>2</capacity></volume>`).capacity, 2_000_000);
    assert.equal(parseVolumeXml(`<volume><name>b</name><capacity>5</capacity></volume>`).format, 'raw');
    assert.throws(
      () => parseVolumeXml(`<volume><name>b</name><capacity>5</capacity><target><format type='vmdk'/></target></volume>`),
      /format "vmdk"/,
    );
    assert.throws(
      () =>
        parseVolumeXml(
          `<volume><name>b</name><capacity>5</capacity><backingStore><path>/etc/shadow</path></backingStore></volume>`,
        ),
      /backing/,
    );
    assert.throws(() => parseVolumeXml(`<volume><name>..</name><capacity>5</capacity></volume>`), /not allowed/);
    assert.throws(() => parseVolumeXml(`<volume><name>b</name><capacity unit='E'>99</capacity></volume>`), /too large/);
  });

  it('names: one path component, no control characters', () => {
    assert.equal(objectNameProblem('disk.qcow2'), undefined);
    assert.match(objectNameProblem('a\nb') ?? '', /control/);
    assert.match(objectNameProblem('x'.repeat(256)) ?? '', /255/);
  });

  it('object events: defined, started, stopped, undefined in order', () => {
    const u = 'u1';
    assert.deepEqual(
      objectDiff(new Map(), new Map([[u, { name: 'n', active: true }]])).map((e) => e.event),
      [0, 2],
    );
    assert.deepEqual(
      objectDiff(new Map([[u, { name: 'n', active: true }]]), new Map()).map((e) => e.event),
      [3, 1],
    );
    assert.deepEqual(
      objectDiff(new Map([[u, { name: 'n', active: true }]]), new Map([[u, { name: 'n', active: false }]])).map((e) => e.event),
      [3],
    );
  });
});
