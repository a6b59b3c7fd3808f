import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SvirtError } from '../errors.js';
import { formatDomainXml } from './format-domain-xml.js';
import { parseDomainXml } from './parse-domain-xml.js';

const MEMFD = "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>";

function doc(devices: string, extra = ''): string {
  return `<domain type='qemu'><name>g</name><uuid>11111111-2222-4333-8444-555555555555</uuid><memory unit='MiB'>64</memory>${extra}<os><type>hvm</type></os><devices>${devices}</devices></domain>`;
}

function refused(xml: string, code: string, message: RegExp): void {
  assert.throws(
    () => parseDomainXml(xml),
    (e: unknown) => e instanceof SvirtError && e.code === code && message.test(e.message),
  );
}

describe('<tpm>', () => {
  it('reads the emulator backend: tpm-tis by default, tpm-crb, version 2.0, persistent_state', () => {
    assert.deepEqual(parseDomainXml(doc("<tpm><backend type='emulator'/></tpm>")).tpms, [
      { model: 'tpm-tis', version: '2.0', persistentState: false },
    ]);
    const crb = "<tpm model='tpm-crb'><backend type='emulator' version='2.0' persistent_state='yes'/></tpm>";
    assert.deepEqual(parseDomainXml(doc(crb)).tpms, [{ model: 'tpm-crb', version: '2.0', persistentState: true }]);
    assert.equal(parseDomainXml(doc('')).tpms, undefined);
  });

  it('refuses what svirt cannot confine or run', () => {
    refused(
      doc("<tpm><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm>"),
      'SVIRT_ERR_XML_UNSUPPORTED',
      /TPM backend 'passthrough': svirt cannot confine a host TPM shared with a guest; use <backend type='emulator'\/>/,
    );
    refused(doc("<tpm><backend type='external'/></tpm>"), 'SVIRT_ERR_XML_UNSUPPORTED', /only 'emulator'/);
    refused(doc("<tpm><backend type='emulator' version='1.2'/></tpm>"), 'SVIRT_ERR_XML_UNSUPPORTED', /only 2.0/);
    refused(doc("<tpm model='tpm-spapr'><backend type='emulator'/></tpm>"), 'SVIRT_ERR_XML_UNSUPPORTED', /tpm-tis and tpm-crb/);
    refused(
      doc("<tpm><backend type='emulator'><encryption secret='x'/></backend></tpm>"),
      'SVIRT_ERR_XML_UNSUPPORTED',
      /<encryption>/,
    );
    refused(doc('<tpm/>'), 'SVIRT_ERR_XML_INVALID', /needs a <backend/);
    const one = "<tpm><backend type='emulator'/></tpm>";
    refused(doc(one + one), 'SVIRT_ERR_XML_INVALID', /only one <tpm>/);
  });
});

describe('<filesystem>', () => {
  const fs = (body: string, attrs = "type='mount' accessmode='passthrough'"): string =>
    doc(`<filesystem ${attrs}>${body}</filesystem>`, MEMFD);

  it('reads a virtiofs share, read-only or not', () => {
    const def = parseDomainXml(fs("<driver type='virtiofs'/><source dir='/srv/a'/><target dir='tag_1'/><readonly/>"));
    assert.deepEqual(def.filesystems, [{ source: '/srv/a', tag: 'tag_1', readonly: true }]);
    const rw = parseDomainXml(fs("<driver type='virtiofs'/><source dir='/srv/b'/><target dir='b'/>", ''));
    assert.deepEqual(rw.filesystems, [{ source: '/srv/b', tag: 'b', readonly: false }]);
  });

  it('refuses 9p, other access modes, a binary path, a bad tag or path, and a domain without shared memory', () => {
    refused(fs("<source dir='/srv/a'/><target dir='t'/>"), 'SVIRT_ERR_XML_UNSUPPORTED', /driver "path": only virtiofs/);
    refused(fs("<driver type='handle'/><source dir='/srv/a'/><target dir='t'/>"), 'SVIRT_ERR_XML_UNSUPPORTED', /only virtiofs/);
    refused(
      fs("<driver type='virtiofs'/><source dir='/srv/a'/><target dir='t'/>", "type='mount' accessmode='mapped'"),
      'SVIRT_ERR_XML_UNSUPPORTED',
      /accessmode "mapped"/,
    );
    refused(
      fs("<driver type='virtiofs'/><source dir='/srv/a'/><target dir='t'/>", "type='block'"),
      'SVIRT_ERR_XML_UNSUPPORTED',
      /only 'mount'/,
    );
    refused(
      fs("<driver type='virtiofs'/><binary path='/tmp/evil'/><source dir='/srv/a'/><target dir='t'/>"),
      'SVIRT_ERR_XML_UNSUPPORTED',
      /svirt runs its own virtiofsd/,
    );
    refused(fs("<driver type='virtiofs'/><source dir='/srv/a'/><target dir='a,b'/>"), 'SVIRT_ERR_XML_INVALID', /mount tag "a,b"/);
    refused(fs("<driver type='virtiofs'/><source dir='srv/a'/><target dir='t'/>"), 'SVIRT_ERR_PATH_INVALID', /shared folder/);
    refused(fs("<driver type='virtiofs'/><target dir='t'/>"), 'SVIRT_ERR_XML_INVALID', /needs <source dir=/);
    refused(
      doc("<filesystem><driver type='virtiofs'/><source dir='/srv/a'/><target dir='t'/></filesystem>"),
      'SVIRT_ERR_XML_INVALID',
      /virtiofs needs shared guest memory/,
    );
  });

  it('both devices survive a format → parse round trip unchanged', () => {
    const xml = doc(
      "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm><filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='/srv/a'/><target dir='t'/></filesystem>",
      MEMFD,
    );
    const def = parseDomainXml(xml);
    const again = parseDomainXml(formatDomainXml(def));
    assert.deepEqual([again.tpms, again.filesystems], [def.tpms, def.filesystems]);
    assert.match(formatDomainXml(again), /<memoryBacking>\s*<source type='memfd'\/>\s*<access mode='shared'\/>/);
  });

  it('a def whose tree lacks them (or has others) is written with exactly its devices and shared memory', () => {
    const def = parseDomainXml(doc("<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>"));
    const bare = { kind: 'element' as const, name: 'domain', attrs: [], children: [] };
    const wanted = {
      ...def,
      source: bare,
      tpms: [{ model: 'tpm-tis' as const, version: '2.0' as const, persistentState: true }],
      filesystems: [{ source: '/srv/x', tag: 'x', readonly: true }],
    };
    const again = parseDomainXml(formatDomainXml(wanted));
    assert.deepEqual([again.tpms, again.filesystems], [wanted.tpms, wanted.filesystems]);
    const dropped = parseDomainXml(formatDomainXml({ ...def, tpms: [] }));
    assert.equal(dropped.tpms, undefined);
  });
});
