import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { SvirtError } from '../errors.js';
import { dnsmasqConf } from './dnsmasq-conf.js';
import { formatNetworkXml, parseNetworkXml } from './network-xml.js';
import { nftRules } from './nft.js';

const FIXTURES = new URL('../../../test/fixtures/network/', import.meta.url);
const read = (name: string): string => readFileSync(new URL(name, FIXTURES), 'utf8');

/** Compares with a golden file; SVIRT_UPDATE_GOLDEN=1 rewrites it (then review the diff). */
function golden(name: string, actual: string): void {
  if (process.env['SVIRT_UPDATE_GOLDEN'] === '1') writeFileSync(new URL(name, FIXTURES), actual);
  assert.equal(actual, read(name), `golden file test/fixtures/network/${name}`);
}

const PATHS = { leases: '/var/lib/svirt/networks/N/dnsmasq.leases', pid: '/var/lib/svirt/networks/N/dnsmasq.pid' };

describe('network XML, nft rules and dnsmasq configuration (golden files)', () => {
  for (const name of ['default', 'isolated']) {
    it(`${name}.xml: parses and formats back unchanged`, () => {
      const def = parseNetworkXml(read(`${name}.xml`));
      assert.equal(formatNetworkXml(def), read(`${name}.xml`));
      assert.deepEqual(parseNetworkXml(formatNetworkXml(def)), def);
    });
    it(`${name}.xml: nft rules and dnsmasq.conf`, () => {
      const def = parseNetworkXml(read(`${name}.xml`));
      golden(`${name}.nft`, nftRules(def, def.bridge.name ?? ''));
      golden(`${name}.dnsmasq.conf`, dnsmasqConf(def, def.bridge.name ?? '', PATHS));
    });
  }

  it('reads the default network as libvirt writes it', () => {
    const def = parseNetworkXml(read('default.xml'));
    assert.deepEqual(def.forward, { mode: 'nat', ports: { start: 1024, end: 65535 } });
    assert.deepEqual(def.ips, [
      {
        address: '192.168.122.1',
        prefix: 24,
        dhcp: {
          ranges: [{ start: '192.168.122.2', end: '192.168.122.254' }],
          hosts: [{ mac: '52:54:00:00:00:45', name: 'web', ip: '192.168.122.45' }],
        },
      },
    ]);
  });

  it('takes prefix= as well as netmask=', () => {
    const def = parseNetworkXml("<network><name>n</name><ip address='10.88.0.1' prefix='16'/></network>");
    assert.deepEqual(def.ips, [{ address: '10.88.0.1', prefix: 16 }]);
  });

  it('refuses what it would not run, naming the element', () => {
    const bad: [string, RegExp][] = [
      ["<network><name>n</name><forward mode='route'/><ip address='10.0.0.1'/></network>", /forward mode "route"/],
      ["<network><name>n</name><forward mode='bridge'/></network>", /forward mode "bridge"/],
      ["<network><name>n</name><ip family='ipv6' address='fd00::1' prefix='64'/></network>", /IPv4/],
      ["<network><name>n</name><portgroup name='p'/></network>", /<portgroup>/],
      ["<network><name>n</name><dns><host ip='1.2.3.4'/></dns></network>", /<host> in <dns>/],
      ["<network><name>n</name><forward mode='nat'/></network>", /needs an <ip/],
      ['<network><name>a/b</name></network>', /not allowed/],
      ["<network><name>n</name><ip address='10.0.0.0' prefix='24'/></network>", /network or broadcast/],
      [
        "<network><name>n</name><ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.1.2' end='10.0.1.9'/></dhcp></ip></network>",
        /not a host address/,
      ],
      [
        "<network><name>n</name><ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.9' end='10.0.0.2'/></dhcp></ip></network>",
        /ends .* before it starts/,
      ],
      ["<network><name>n</name><bridge name='br;x'/></network>", /not an interface name/],
      ["<network><name>n</name><ip address='10.0.0.1' netmask='255.0.255.0'/></network>", /contiguous/],
    ];
    for (const [xml, pattern] of bad) {
      assert.throws(
        () => parseNetworkXml(xml),
        (e: unknown) => e instanceof SvirtError && pattern.test(e.message),
        xml,
      );
    }
  });
});
