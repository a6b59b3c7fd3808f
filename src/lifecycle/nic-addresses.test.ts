import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SvirtError } from '../errors.js';
import { agentAddresses } from './nic-addresses.js';
import { parseLeases } from './networks.js';

describe('domifaddr sources', () => {
  it("reads a guest agent's interfaces, skipping what is not a valid IPv4 address", () => {
    const reply = JSON.stringify({
      return: [
        {
          name: 'lo',
          'hardware-address': '00:00:00:00:00:00',
          'ip-addresses': [{ 'ip-address-type': 'ipv4', 'ip-address': '127.0.0.1', prefix: 8 }],
        },
        {
          name: 'eth0',
          'hardware-address': '52:54:00:aa:bb:cc',
          'ip-addresses': [
            { 'ip-address-type': 'ipv4', 'ip-address': '10.77.0.16', prefix: 24 },
            { 'ip-address-type': 'ipv6', 'ip-address': 'fe80::1', prefix: 64 },
            { 'ip-address-type': 'ipv4', 'ip-address': '999.1.1.1', prefix: 24 },
            { 'ip-address-type': 'ipv4', 'ip-address': '10.0.0.1', prefix: 99 },
          ],
        },
        { name: 'bad\nname', 'ip-addresses': 'nope' },
      ],
    });
    assert.deepEqual(agentAddresses(reply), [
      { name: 'lo', mac: '00:00:00:00:00:00', protocol: 'ipv4', address: '127.0.0.1', prefix: 8 },
      { name: 'eth0', mac: '52:54:00:aa:bb:cc', protocol: 'ipv4', address: '10.77.0.16', prefix: 24 },
    ]);
    assert.throws(
      () => agentAddresses('{"error":{"class":"GenericError"}}'),
      (e: unknown) => e instanceof SvirtError && e.code === 'SVIRT_ERR_AGENT',
    );
    assert.throws(
      () => agentAddresses('not json'),
      (e: unknown) => e instanceof SvirtError,
    );
  });

  it("reads dnsmasq's leases file", () => {
    const text =
      '1796034746 52:54:00:88:F9:41 10.77.0.16 * 01:52:54:00:88:f9:41\n0 52:54:00:00:00:02 10.77.0.17 web *\ngarbage\n';
    assert.deepEqual(parseLeases(text, 24), [
      { expiry: 1796034746, mac: '52:54:00:88:f9:41', ip: '10.77.0.16', prefix: 24, clientId: '01:52:54:00:88:f9:41' },
      { expiry: 0, mac: '52:54:00:00:00:02', ip: '10.77.0.17', prefix: 24, hostname: 'web' },
    ]);
  });
});
