/**
 * A NAT network end to end, inside network namespaces the test makes: svirt defines and
 * starts the network (bridge, its own nft table, confined dnsmasq) in namespace A, the guest
 * image boots with a NIC on it and gets an address by DHCP, and reaches a TCP server in
 * namespace B across a veth pair, masqueraded to A's address. net-dhcp-leases and domifaddr
 * show the lease; the tap, the table, the bridge and dnsmasq are gone afterwards.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { qemuAsRootSkip, scratch, writeDomain, QEMU } from '../helpers.js';
import { GUEST_BANNER, guestImage, guestImageSkip, guestOsXml, type GuestImage } from '../support/guest-image.js';
import { netnsSkip, nsProcesses, nsRun, SerialConsole, svirtIn, svirtInOk, serverAcrossVeth } from '../support/netns.js';

const skip = qemuAsRootSkip() || netnsSkip() || guestImageSkip();
const S = ['--security-driver', 'dac,landlock'];
const BOOT_MS = 180_000;

const NETWORK = `<network>
  <name>nat0</name>
  <forward mode='nat'/>
  <bridge name='svbr-nat0'/>
  <ip address='10.77.0.1' prefix='24'>
    <dhcp><range start='10.77.0.10' end='10.77.0.20'/></dhcp>
  </ip>
</network>
`;

function guestXml(image: GuestImage, consoleSock: string): string {
  return `<domain type='qemu'>
  <name>natguest</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  ${guestOsXml(image)}
  <devices>
    <emulator>${QEMU}</emulator>
    <interface type='network'><source network='nat0'/><model type='virtio'/></interface>
    <serial type='unix'><source mode='bind' path='${consoleSock}'/><target port='0'/></serial>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
  </devices>
</domain>
`;
}

describe('a NAT network (namespaces, real dnsmasq, nft, QEMU)', { skip }, () => {
  it(
    'gives the guest an address by DHCP and NATs its TCP to a server across a veth',
    { timeout: BOOT_MS + 120_000 },
    async (t) => {
      const image = guestImage() as GuestImage;
      const dir = scratch(t);
      const { a } = await serverAcrossVeth(t, 'hello-from-b');

      const netFile = join(dir, 'nat0.xml');
      writeFileSync(netFile, NETWORK);
      await svirtInOk(a, dir, ['net-define', netFile]);
      await svirtInOk(a, dir, ['net-start', 'nat0']);
      const rules = nsRun(a, ['nft', 'list', 'table', 'ip', 'svirt-nat0']);
      assert.match(rules, /masquerade/);
      const dnsmasq = nsProcesses(a).find((p) => p.args.startsWith('/usr/sbin/dnsmasq --conf-file='));
      assert.ok(dnsmasq, 'dnsmasq runs in the namespace');
      assert.equal(dnsmasq.uid, Number(nsRun(a, ['id', '-u', 'dnsmasq']).trim()), 'as the dnsmasq user');

      const sock = join(dir, 'console.sock');
      await svirtInOk(a, dir, [...S, 'define', writeDomain(dir, 'natguest', guestXml(image, sock))]);
      await svirtInOk(a, dir, [...S, 'start', 'natguest']);
      const list = await svirtInOk(a, dir, ['domiflist', 'natguest']);
      assert.match(list, /^ vnet\d+\s+network\s+nat0\s+virtio\s+52:54:00(:[0-9a-f]{2}){3}$/m);
      const tap = /^ (vnet\d+)/m.exec(list)?.[1] ?? '';
      assert.match(nsRun(a, ['ip', '-o', 'link', 'show', tap]), /master svbr-nat0/);

      const serial = await SerialConsole.open(sock);
      t.after(() => serial.close());
      let addr: RegExpExecArray | null = null;
      const deadline = Date.now() + BOOT_MS;
      while (!addr && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 1000));
        addr = /ipv4\s+(10\.77\.0\.\d+)\/24/.exec((await svirtIn(a, dir, ['domifaddr', 'natguest'])).stdout);
      }
      assert.ok(addr, `no DHCP lease within ${BOOT_MS / 1000} s; console:\n${serial.text.slice(-1500)}`);
      // The guest's own view, from its agent, agrees with the lease.
      let fromAgent = '';
      for (let i = 0; i < 30 && !fromAgent.includes(addr[1] ?? '-'); i++) {
        fromAgent = (await svirtIn(a, dir, ['domifaddr', 'natguest', '--source', 'agent'])).stdout;
        if (!fromAgent.includes(addr[1] ?? '-')) await new Promise((r) => setTimeout(r, 1000));
      }
      assert.match(
        fromAgent,
        new RegExp(`^ eth0\\s+52:54:00(:[0-9a-f]{2}){3}\\s+ipv4\\s+${addr[1]?.replace(/\./g, '\\.') ?? ''}/24$`, 'm'),
      );
      const leases = await svirtInOk(a, dir, ['net-dhcp-leases', 'nat0']);
      assert.match(leases, new RegExp(`ipv4\\s+${addr[1]?.replace(/\./g, '\\.') ?? ''}/24`));

      // The shell may still be starting: ask until the answer comes, a bounded number of times.
      let reply: RegExpExecArray | undefined;
      for (let i = 0; i < 30 && !reply; i++) {
        serial.send('echo | nc 10.99.0.2 7777');
        reply = await serial.waitFor(/hello-from-b from (\S+)\r?\n/, 4000);
      }
      assert.ok(reply, `the guest did not reach the server; console:\n${serial.text.slice(-1500)}`);
      assert.equal(reply[1]?.replace(/^::ffff:/, ''), '10.99.0.1', 'masqueraded to namespace A address');
      assert.ok(serial.text.includes(GUEST_BANNER) || serial.text.includes('svirt-guest#'));

      const busy = await svirtIn(a, dir, ['net-destroy', 'nat0']);
      assert.notEqual(busy.code, 0);
      assert.match(busy.stderr, /in use by running guests \(natguest\)/);
      await svirtInOk(a, dir, [...S, 'destroy', 'natguest']);
      assert.doesNotMatch(nsRun(a, ['ip', '-o', 'link']), new RegExp(`${tap}[:@]`), 'the tap is gone');
      await svirtInOk(a, dir, ['net-destroy', 'nat0']);
      assert.doesNotMatch(nsRun(a, ['nft', 'list', 'tables']), /svirt-nat0/);
      assert.doesNotMatch(nsRun(a, ['ip', '-o', 'link']), /svbr-nat0/);
      assert.deepEqual(
        nsProcesses(a).filter((p) => p.args.includes('dnsmasq')),
        [],
        'dnsmasq ended',
      );
    },
  );
});
