/**
 * NIC hot-plug on the pc machine, in a namespace the test makes: attach-interface makes a tap
 * on the bridge and plugs a virtio NIC into the booted guest image; detach-interface unplugs
 * it and removes the tap. A target name that is an existing non-tap interface is refused with
 * nothing left, and an attach killed after QEMU got the tap's fd is undone by the next
 * command's repair: no tap, no netdev, no pending operation.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { qemuAsRootSkip, readRunning, scratch, writeDomain, QEMU } from '../helpers.js';
import { guestImage, guestImageSkip, guestOsXml, type GuestImage } from '../support/guest-image.js';
import { netns, netnsSkip, nsRun, SerialConsole, svirtIn, svirtInOk, svirtInCrashing } from '../support/netns.js';
import { join } from 'node:path';

const skip = qemuAsRootSkip() || netnsSkip() || guestImageSkip();
const S = ['--security-driver', 'dac,landlock'];
const BOOT_MS = 180_000;

function guestXml(image: GuestImage, sock: string, machine: string): string {
  return `<domain type='qemu'>
  <name>plug</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  ${guestOsXml(image, machine)}
  <devices>
    <emulator>${QEMU}</emulator>
    <serial type='unix'><source mode='bind' path='${sock}'/><target port='0'/></serial>
  </devices>
</domain>
`;
}

const taps = (ns: string): string[] =>
  nsRun(ns, ['ip', '-o', 'link'])
    .split('\n')
    .map((l) => /^\d+: (vnet\d+)[:@]/.exec(l)?.[1])
    .filter((x): x is string => x !== undefined);

describe('NIC hot-plug (namespace, booted guest image)', { skip }, () => {
  for (const machine of ['pc', 'q35'])
    it(
      `${machine}: attaches and detaches a NIC on a bridge; refuses a non-tap target; repairs a crashed attach`,
      { timeout: BOOT_MS + 120_000 },
      async (t) => {
        const image = guestImage() as GuestImage;
        const dir = scratch(t);
        const ns = netns(t);
        nsRun(ns, ['ip', 'link', 'add', 'br-test', 'type', 'bridge']);
        nsRun(ns, ['ip', 'link', 'set', 'br-test', 'up']);
        const sock = join(dir, 'console.sock');
        await svirtInOk(ns, dir, [...S, 'define', writeDomain(dir, 'plug', guestXml(image, sock, machine))]);
        await svirtInOk(ns, dir, [...S, 'start', 'plug']);
        const serial = await SerialConsole.open(sock);
        t.after(() => serial.close());
        assert.ok(await serial.waitFor(/svirt-guest: up after/, BOOT_MS), `no boot; console:\n${serial.text.slice(-1000)}`);

        // A name that is a bridge, not a tap: refused before anything is made.
        const bad = await svirtIn(ns, dir, [...S, 'attach-interface', 'plug', 'bridge', 'br-test', '--target', 'br-test']);
        assert.notEqual(bad.code, 0);
        assert.match(bad.stderr, /"br-test" is an existing interface that is not a tap/);
        assert.deepEqual(taps(ns), []);

        await svirtInOk(ns, dir, [
          ...S,
          'attach-interface',
          'plug',
          'bridge',
          'br-test',
          '--model',
          'virtio',
          '--mac',
          '52:54:00:12:34:56',
        ]);
        const list = await svirtInOk(ns, dir, ['domiflist', 'plug']);
        assert.match(list, /^ (vnet\d+)\s+bridge\s+br-test\s+virtio\s+52:54:00:12:34:56$/m);
        const [tap] = taps(ns);
        assert.ok(tap);
        assert.match(nsRun(ns, ['ip', '-o', 'link', 'show', tap]), /master br-test/);
        // The guest sees the NIC: its kernel brings up a new ethN with that MAC.
        let seen: RegExpExecArray | undefined;
        for (let i = 0; i < 30 && !seen; i++) {
          serial.send('cat /sys/class/net/eth*/address');
          seen = await serial.waitFor(/52:54:00:12:34:56/, 2000);
        }
        assert.ok(seen, `the guest has no such NIC; console:\n${serial.text.slice(-800)}`);

        await svirtInOk(ns, dir, [...S, 'detach-interface', 'plug', 'bridge', '--mac', '52:54:00:12:34:56']);
        assert.deepEqual(taps(ns), [], 'the tap is gone with the NIC');
        assert.doesNotMatch(await svirtInOk(ns, dir, ['dumpxml', 'plug']), /<interface/);

        // Killed after QEMU got the tap's fd: the next command undoes the whole attach.
        const code = await svirtInCrashing(ns, dir, 'attach:fds-passed', [...S, 'attach-interface', 'plug', 'bridge', 'br-test']);
        assert.notEqual(code, 0);
        await svirtInOk(ns, dir, ['list']);
        const rec = readRunning(dir).find((x) => x.name === 'plug');
        assert.ok(rec);
        assert.doesNotMatch(rec.live_xml, /<interface/);
        assert.deepEqual(taps(ns), [], 'no tap left by the crashed attach');
        const pending = await svirtInOk(ns, dir, ['dominfo', 'plug']);
        assert.doesNotMatch(pending, /busy/);
        await svirtInOk(ns, dir, [...S, 'attach-interface', 'plug', 'bridge', 'br-test']);
        assert.equal(taps(ns).length, 1, 'a new attach works after the repair (the netdev id is free again)');
        await svirtInOk(ns, dir, [...S, 'destroy', 'plug']);
        assert.deepEqual(taps(ns), []);
      },
    );
});
