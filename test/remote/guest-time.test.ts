/**
 * The operations that need the guest's own help, through `svirt serve` with the real virsh on
 * the booted guest image (qemu-ga in it): `qemu-agent-command` over the libvirt-qemu program,
 * `domtime` read through the agent (and a set passed to it), and `setmem` moving the balloon the guest's
 * virtio-balloon driver answers.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, scratch } from '../helpers.js';
import { GUEST_PROMPT, guestImage, ptyGuestXml } from '../support/guest-image.js';
import { haveVirsh, startServer, virsh, virshOk } from './support.js';

const image = guestImage();
const skip = !isRoot()
  ? 'the dac driver needs root'
  : !haveVirsh()
    ? 'virsh is not installed'
    : 'skip' in image
      ? image.skip
      : false;

const AGENT = `
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <memballoon model='virtio'/>`;

async function until(what: string, cond: () => Promise<boolean> | boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('svirt serve: guest agent operations', { skip, timeout: 240_000 }, () => {
  it('qemu-agent-command, domtime get and set, setmem through the balloon', async (t) => {
    if ('skip' in image) return;
    const dir = scratch(t);
    const s = (await startServer(t, dir)).socket;
    const log = join(dir, 'serial.log');
    const xml = join(dir, 'ga.xml');
    writeFileSync(xml, ptyGuestXml(image, 'ga', log, AGENT));
    await virshOk(s, ['define', xml]);
    await virshOk(s, ['start', 'ga']);
    await until('the guest shell', () => readFileSync(log, 'utf8').includes(GUEST_PROMPT), 120_000);
    await until(
      'the agent',
      async () => (await virsh(s, ['qemu-agent-command', 'ga', '{"execute":"guest-ping"}'])).code === 0,
      60_000,
    );
    assert.deepEqual(JSON.parse(await virshOk(s, ['qemu-agent-command', 'ga', '{"execute":"guest-ping"}'])), { return: {} });

    const now = Math.floor(Date.now() / 1000);
    const got = Number(/^Time: (\d+)$/m.exec(await virshOk(s, ['domtime', 'ga']))?.[1]);
    assert.ok(Math.abs(got - now) < 120, `the guest's clock ${got} is the host's ${now} (its RTC)`);
    // Setting it reaches the agent, whose answer is passed on: this busybox guest's qemu-ga has no
    // hwclock to set the time with, and says so.
    const set = await virsh(s, ['domtime', 'ga', '--time', String(now - 86_400)]);
    assert.notEqual(set.code, 0);
    assert.match(set.stderr, /guest agent of 'ga': .*not currently supported/);

    await virshOk(s, ['setmem', 'ga', '160M', '--live']);
    await until(
      'the balloon to reach 160 MiB',
      async () => /^actual 163840$/m.test(await virshOk(s, ['dommemstat', 'ga'])),
      60_000,
    );
  });
});
