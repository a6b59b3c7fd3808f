/**
 * PCIe hot-plug seen from inside a booted guest (the real guest image, q35, TCG, under
 * dac,landlock): a virtio disk attached into a free pcie-root-port appears as /sys/block/vdb,
 * and a detach takes it away again (the guest's pciehp answers the unplug). The test talks to
 * the guest's shell on its serial port, a UNIX socket svirt binds.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { makeImage, owner, qemuAsRootSkip, scratch, svirtOk, writeDomain, QEMU } from '../helpers.js';
import { GUEST_PROMPT, guestImage, guestImageSkip, guestOsXml, type GuestImage } from '../support/guest-image.js';

const skip = qemuAsRootSkip() || guestImageSkip();
const S = ['--security-driver', 'dac,landlock'];
/** A TCG boot on a shared 2-core host: about 15 s of guest time, much more under load. */
const BOOT_MS = 180_000;

/** The guest's serial console over svirt's socket: everything it printed, and a way to type. */
class Console {
  private text = '';
  private constructor(private readonly sock: Socket) {
    sock.on('data', (d: Buffer) => (this.text += d.toString('latin1')));
  }

  static async open(path: string): Promise<Console> {
    const sock = await new Promise<Socket>((resolve, reject) => {
      const s = connect(path, () => resolve(s));
      s.once('error', reject);
    });
    return new Console(sock);
  }

  get output(): string {
    return this.text;
  }

  /** Waits until the output (after `from`) matches, within `ms`; the match, or undefined. */
  async wait(re: RegExp, ms: number, from = 0): Promise<RegExpExecArray | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = re.exec(this.text.slice(from));
      if (m) return m;
      if (Date.now() > deadline) return undefined;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Runs a shell command and returns what it printed between two markers. */
  async run(cmd: string, ms = 30_000): Promise<string> {
    const tag = `M${Date.now().toString(36)}`;
    const from = this.text.length;
    this.sock.write(`echo ${tag}-A; ${cmd}; echo ${tag}-B\n`);
    const m = await this.wait(new RegExp(`\\n${tag}-A\\r?\\n([\\s\\S]*?)${tag}-B`), ms, from);
    assert.ok(m, `no answer to "${cmd}" within ${ms} ms; the console ends with:\n${this.text.slice(-1500)}`);
    return m[1] ?? '';
  }

  close(): void {
    this.sock.destroy();
  }
}

/** Polls a guest command until its output passes `ok`, within `ms`. */
async function until(con: Console, cmd: string, ok: (out: string) => boolean, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  let out = '';
  while (Date.now() < deadline) {
    out = await con.run(cmd);
    if (ok(out)) return out;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return out;
}

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
