/**
 * PCIe hot-plug seen from inside a booted guest (the real guest image, q35, TCG, under
 * dac,landlock): a virtio disk attached into a free pcie-root-port appears as /sys/block/vdb,
 * and a detach takes it away again (the guest's pciehp answers the unplug). The test talks to
 * the guest's shell on its serial port, a UNIX socket svirt binds.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { makeImage, owner, qemuAsRootSkip, scratch, svirtOk, writeDomain, QEMU } from '../helpers.js';
import { Console, until } from '../support/guest-console.js';
import { GUEST_PROMPT, guestImage, guestImageSkip, guestOsXml, type GuestImage } from '../support/guest-image.js';

const skip = qemuAsRootSkip() || guestImageSkip();
const S = ['--security-driver', 'dac,landlock'];
/** A TCG boot on a shared 2-core host: about 15 s of guest time, much more under load. */
const BOOT_MS = 180_000;

describe('PCIe hot-plug into a booted q35 guest (real guest image, dac,landlock)', { skip }, () => {
  it('a virtio disk appears as /sys/block/vdb on attach and is gone after detach', { timeout: BOOT_MS + 180_000 }, async (t) => {
    const image = guestImage() as GuestImage;
    const dir = scratch(t);
    const sock = join(dir, 'console.sock');
    // The guest names virtio disks in the order it finds them: with vda at boot the plugged one is vdb.
    const first = makeImage(join(dir, 'first.img'), 4);
    const extra = makeImage(join(dir, 'extra.img'), 8);
    const xml = `<domain type='qemu'>
  <name>hp</name>
  <memory unit='MiB'>256</memory>
  ${guestOsXml(image, 'q35')}
  <devices>
    <emulator>${QEMU}</emulator>
    <disk type='file'><driver name='qemu' type='raw'/><source file='${first}'/><target dev='vda' bus='virtio'/></disk>
    <serial type='unix'><source mode='bind' path='${sock}'/><target port='0'/></serial>
  </devices>
</domain>
`;
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'hp', xml)]);
    await svirtOk(dir, [...S, 'start', 'hp']);
    const con = await Console.open(sock);
    t.after(() => con.close());
    assert.ok(
      await con.wait(new RegExp(GUEST_PROMPT.replace(/[#]/g, '\\$&')), BOOT_MS),
      `no shell prompt:\n${con.output.slice(-2000)}`,
    );
    const before = await until(con, 'ls /sys/block', (o) => /\bvda\b/.test(o), 30_000);
    assert.match(before, /\bvda\b/, 'the boot disk is there');
    assert.doesNotMatch(before, /vdb/);

    await svirtOk(dir, [...S, 'attach-disk', 'hp', extra, 'vdb']);
    const seen = await until(con, 'ls /sys/block', (o) => /\bvdb\b/.test(o), 60_000);
    assert.match(seen, /\bvdb\b/, 'the guest sees the plugged disk');
    assert.match(await con.run('cat /sys/block/vdb/size'), /^16384\s*$/m, '8 MiB in 512-byte sectors');
    assert.notEqual(owner(extra).uid, 0, "the image is the guest's while plugged");

    await svirtOk(dir, [...S, 'detach-disk', 'hp', 'vdb']);
    const gone = await until(con, 'ls /sys/block', (o) => !/\bvdb\b/.test(o), 30_000);
    assert.doesNotMatch(gone, /\bvdb\b/, 'the guest let go of it');
    assert.equal(owner(extra).uid, 0, 'given back after the unplug');
    assert.doesNotMatch(await svirtOk(dir, [...S, 'dumpxml', 'hp']), /extra\.img/);
  });
});
