import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SvirtError, type ErrorCode } from '../errors.js';
import type { InterfaceDef } from './interface-def.js';
import { formatDomainXml } from './format-domain-xml.js';
import { parseDomainXml } from './parse-domain-xml.js';

const FIXTURES = new URL('../../../test/fixtures/network/', import.meta.url);
const fixture = (name: string): string => readFileSync(new URL(name, FIXTURES), 'utf8');

function domain(nics: string): string {
  return `<domain type='kvm'><name>t</name><memory>1024</memory><os><type>hvm</type></os><devices>${nics}</devices></domain>`;
}

function rejects(nics: string, code: ErrorCode, pattern: RegExp): void {
  assert.throws(
    () => parseDomainXml(domain(nics)),
    (err: unknown) => err instanceof SvirtError && err.code === code && pattern.test(err.message),
  );
}

describe('<interface> parse and format', () => {
  it('reads every modelled field', () => {
    const def = parseDomainXml(fixture('nics.xml'));
    const expected: InterfaceDef[] = [
      {
        type: 'user',
        mac: '52:54:00:aa:bb:01',
        model: 'virtio',
        backend: 'passt',
        portForwards: [
          {
            proto: 'tcp',
            address: '127.0.0.1',
            ranges: [
              { start: 2222, to: 22 },
              { start: 8000, end: 8010 },
            ],
          },
          { proto: 'udp', ranges: [{ start: 5353, exclude: true }] },
        ],
        alias: 'ua-user0',
      },
      {
        type: 'bridge',
        mac: '52:54:00:aa:bb:02',
        model: 'e1000',
        source: 'br0',
        target: 'vnet7',
        portForwards: [],
        link: 'down',
        address: { domain: 0, bus: 0, slot: 5, function: 0 },
      },
      { type: 'network', source: 'default', target: 'mytap0', driver: 'qemu', portForwards: [], alias: 'net2' },
    ];
    assert.deepEqual(def.interfaces, expected);
  });

  it('drops generated tap names and live aliases from an inactive definition, as libvirt does (golden file)', () => {
    const def = parseDomainXml(fixture('nics.xml'), { inactive: true });
    assert.equal(def.interfaces[1]?.target, undefined, 'vnet7 is generated');
    assert.equal(def.interfaces[2]?.target, 'mytap0', 'a chosen name stays');
    assert.equal(def.interfaces[2]?.alias, undefined, 'net2 is live output');
    assert.equal(def.interfaces[0]?.alias, 'ua-user0', 'a user alias stays');
    assert.equal(formatDomainXml(def), fixture('nics.inactive.xml'));
  });

  it('round-trips: format then parse gives the same NICs, and an unchanged NIC keeps its element', () => {
    const def = parseDomainXml(fixture('nics.xml'));
    const again = parseDomainXml(formatDomainXml(def));
    assert.deepEqual(again.interfaces, def.interfaces);
    assert.match(formatDomainXml(def), /<address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'\/>/);
  });

  it('writes changed and new NICs, matched by MAC', () => {
    const def = parseDomainXml(fixture('nics.xml'));
    const nics = [
      { ...(def.interfaces[1] as InterfaceDef), target: 'vnet9' },
      { type: 'network', source: 'lan', mac: '52:54:00:00:00:09', portForwards: [] } satisfies InterfaceDef,
    ];
    const xml = formatDomainXml({ ...def, interfaces: nics });
    const back = parseDomainXml(xml);
    assert.deepEqual(back.interfaces, nics);
    // The bridge NIC kept its PCI address (matched by MAC although it moved to the front).
    assert.match(xml, /<target dev='vnet9'\/>[\s\S]*<address type='pci'[\s\S]*<source network='lan'\/>/);
  });

  it('refuses NIC types it cannot run, naming the type', () => {
    for (const type of ['direct', 'vhostuser', 'hostdev', 'ethernet', 'mcast', 'vdpa']) {
      rejects(`<interface type='${type}'/>`, 'SVIRT_ERR_XML_UNSUPPORTED', new RegExp(`interface type "${type}"`));
    }
    rejects('<interface/>', 'SVIRT_ERR_XML_INVALID', /missing type=/);
  });

  it('refuses children that would be ignored (a filter, a VLAN, bandwidth)', () => {
    for (const child of [
      "<filterref filter='clean-traffic'/>",
      "<vlan><tag id='42'/></vlan>",
      '<bandwidth/>',
      "<boot order='1'/>",
    ]) {
      rejects(`<interface type='user'>${child}</interface>`, 'SVIRT_ERR_XML_UNSUPPORTED', /is not supported/);
    }
    rejects("<interface type='user'><driver name='vhost' queues='4'/></interface>", 'SVIRT_ERR_XML_UNSUPPORTED', /queues=/);
    rejects(
      "<interface type='bridge'><source bridge='br0'/><target dev='t' managed='no'/></interface>",
      'SVIRT_ERR_XML_UNSUPPORTED',
      /managed='no'/,
    );
  });

  it('validates MACs, models, names and port forwards', () => {
    rejects("<interface type='user'><mac address='01:00:5e:00:00:01'/></interface>", 'SVIRT_ERR_XML_INVALID', /unicast MAC/);
    rejects("<interface type='user'><mac address='52:54:00:zz:00:01'/></interface>", 'SVIRT_ERR_XML_INVALID', /unicast MAC/);
    rejects("<interface type='user'><model type='ne2k_pci'/></interface>", 'SVIRT_ERR_XML_UNSUPPORTED', /NIC model "ne2k_pci"/);
    rejects("<interface type='bridge'/>", 'SVIRT_ERR_XML_INVALID', /needs <source bridge=/);
    rejects("<interface type='network'><source bridge='br0'/></interface>", 'SVIRT_ERR_XML_INVALID', /needs <source network=/);
    rejects("<interface type='bridge'><source bridge='br0;reboot'/></interface>", 'SVIRT_ERR_XML_INVALID', /not allowed/);
    rejects(
      "<interface type='bridge'><source bridge='br0'/><target dev='a-name-that-is-too-long'/></interface>",
      'SVIRT_ERR_XML_INVALID',
      /IFNAMSIZ/,
    );
    rejects("<interface type='bridge'><source bridge='br0'/><target dev='vnet%d'/></interface>", 'SVIRT_ERR_XML_INVALID', /"%"/);
    rejects(
      "<interface type='user'><portForward proto='sctp'><range start='1'/></portForward></interface>",
      'SVIRT_ERR_XML_INVALID',
      /proto=/,
    );
    rejects("<interface type='user'><portForward proto='tcp'/></interface>", 'SVIRT_ERR_XML_INVALID', /at least one <range/);
    rejects(
      "<interface type='user'><portForward proto='tcp'><range start='10' end='5'/></portForward></interface>",
      'SVIRT_ERR_XML_INVALID',
      /below start/,
    );
    rejects(
      "<interface type='user'><portForward proto='tcp' address='localhost'><range start='10'/></portForward></interface>",
      'SVIRT_ERR_XML_INVALID',
      /not an IP address/,
    );
    rejects(
      "<interface type='user'><backend type='default'/><portForward proto='tcp'><range start='10'/></portForward></interface>",
      'SVIRT_ERR_XML_UNSUPPORTED',
      /passt backend/,
    );
    rejects(
      "<interface type='bridge'><source bridge='br0'/><backend type='passt'/></interface>",
      'SVIRT_ERR_XML_UNSUPPORTED',
      /backend/,
    );
    rejects(
      "<interface type='user'><backend type='passt' logFile='/tmp/x'/></interface>",
      'SVIRT_ERR_XML_UNSUPPORTED',
      /logFile=/,
    );
  });
});
