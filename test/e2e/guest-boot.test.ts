/**
 * The real guest image (scripts/build-guest.sh, test/support/guest-image.ts) under dac,landlock,
 * booted once (TCG is slow) with a pty serial port logged to a file, the guest-agent channel
 * and a VNC display on a socket: the shell comes up, `svirt console` runs a command in it,
 * the agent answers guest-ping, a screenshot is a PNG of the text console, and another uid
 * reaches neither the pty (svirt's own: not even the guest's uid does) nor the agent socket. A second test starts two paused guests with
 * TCP autoport displays: different ports, a taken explicit port refused, ports given back.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseDomainXml } from '../../src/domain/index.js';
import { countRows, qemuAsRootSkip, scratch, svirt, svirtOk, waitFor, writeDomain, QEMU } from '../helpers.js';
import { consoleRun } from '../support/console-run.js';
import { GUEST_BANNER, guestImage, guestImageSkip, guestOsXml, type GuestImage } from '../support/guest-image.js';
import { nonBackground } from '../support/png-pixels.js';

const skip = qemuAsRootSkip() || guestImageSkip();
const S = ['--security-driver', 'dac,landlock'];
/** A TCG boot on a shared 2-core host: about 15 s of guest time, much more under load. */
const BOOT_MS = 180_000;
/** A uid no guest has (svirt's dac range starts at 1,900,000,000). */
const STRANGER = 61_234;

function bootXml(name: string, image: GuestImage, log: string): string {
  return `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  ${guestOsXml(image)}
  <devices>
    <emulator>${QEMU}</emulator>
    <serial type='pty'><log file='${log}' append='off'/><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <graphics type='vnc'><listen type='socket'/></graphics>
    <video><model type='vga'/></video>
    <input type='tablet' bus='usb'/>
  </devices>
</domain>
`;
}

/** Whether `uid` can open `path` read-write (a shell of that uid tries). */
function openAs(uid: number, path: string): { ok: boolean; err: string } {
  const r = spawnSync('sh', ['-c', 'exec 3<>"$1"', 'sh', path], { uid, gid: uid, encoding: 'utf8', timeout: 5000 });
  return { ok: r.status === 0, err: r.stderr.trim() };
}

describe('the guest image under dac,landlock (real QEMU, TCG)', { skip }, () => {
  it(
    'boots to its shell; console, guest agent, screenshot; its pty and agent socket are its own',
    { timeout: BOOT_MS + 120_000 },
    async (t) => {
      const image = guestImage() as GuestImage;
      const dir = scratch(t);
      const log = join(dir, 'serial.log');
      await svirtOk(dir, [...S, 'define', writeDomain(dir, 'guest', bootXml('guest', image, log))]);
      await svirtOk(dir, [...S, 'start', 'guest']);

      const live = parseDomainXml(await svirtOk(dir, ['dumpxml', 'guest']));
      const xml = await svirtOk(dir, ['dumpxml', 'guest']);
      const pty = /<serial type='pty'>\s*<source path='(\/dev\/pts\/\d+)'\/>/.exec(xml)?.[1];
      assert.ok(pty, `the live XML shows the pty:\n${xml}`);
      assert.match(xml, new RegExp(`<console type='pty' tty='${pty}'>`));
      const agent = live.chardevs.find((c) => c.targetName === 'org.qemu.guest_agent.0')?.path;
      const runtimeDir = join(dir, 'run', live.uuid);
      assert.equal(agent, join(runtimeDir, 'org.qemu.guest_agent.0'), 'the agent socket is in the runtime dir');
      if (agent === undefined) return;

      const booted = await waitFor(() => existsSync(log) && readFileSync(log, 'latin1').includes(GUEST_BANNER), BOOT_MS, 500);
      assert.ok(
        booted,
        `no banner within ${BOOT_MS / 1000} s; the serial log ends with:\n${readFileSync(log, 'latin1').slice(-2000)}`,
      );

      // the guest's uid owns its agent socket; the pty is svirt's own (QEMU has a socket the
      // monitor relays), so neither a stranger's uid nor the guest's own opens it
      const uid = Number(/model='dac'[^>]*>\s*<label>\+(\d+):/.exec(xml)?.[1]);
      assert.equal(statSync(pty).uid, 0, 'the pty is svirt’s own');
      assert.equal(statSync(pty).mode & 0o777, 0o600);
      assert.equal(statSync(agent).uid, uid, 'the agent socket belongs to the guest uid');
      for (const who of [STRANGER, uid]) {
        const opened = openAs(who, pty);
        assert.ok(!opened.ok, `uid ${who} cannot open the pty`);
        assert.match(opened.err, /Permission denied/);
      }

      const session = await consoleRun(dir, S, 'guest', 'echo $((6*7))\n', /\r?\n42\r?\n/, 60_000);
      assert.equal(session.code, 0, `console output:\n${session.out}`);
      assert.match(session.out, /\n42\r?\n/);
      const second = await consoleRun(dir, S, 'guest', 'echo second-$((2+3))\n', /second-5/, 60_000);
      assert.match(second.out, /second-5/, 'a new session after the first one left');

      let ping = await svirt(dir, [...S, 'qemu-agent-command', 'guest', '{"execute":"guest-ping"}', '--timeout', '10']);
      for (let i = 0; i < 5 && ping.code !== 0; i++) {
        ping = await svirt(dir, [...S, 'qemu-agent-command', 'guest', '{"execute":"guest-ping"}', '--timeout', '10']);
      }
      assert.equal(ping.code, 0, ping.stderr);
      assert.deepEqual(JSON.parse(ping.stdout), { return: {} });

      const uri = (await svirtOk(dir, [...S, 'domdisplay', 'guest'])).trim();
      assert.equal(uri, `vnc+unix://${join(runtimeDir, 'vnc.sock')}`);
      const shot = join(dir, 'shot.png');
      await svirtOk(dir, [...S, 'screenshot', 'guest', shot]);
      const png = readFileSync(shot);
      const px = nonBackground(png);
      assert.ok(
        png.readUInt32BE(16) >= 640 && png.readUInt32BE(20) >= 400,
        `a console-sized picture: ${png.readUInt32BE(16)}x${png.readUInt32BE(20)}`,
      );
      assert.ok(px.colours >= 2 && px.foreground > 1000, `text on the screen: ${JSON.stringify(px)}`);
      const again = await svirt(dir, [...S, 'screenshot', 'guest', shot]);
      assert.notEqual(again.code, 0, 'an existing file is not overwritten');
      assert.match(again.stderr, /EEXIST/);

      await svirtOk(dir, [...S, 'destroy', 'guest']);
      assert.ok(!existsSync(agent), 'the agent socket went with the guest');
    },
  );

  it(
    'two guests with autoport get different ports; a taken port is refused; ports come back',
    { timeout: 120_000 },
    async (t) => {
      const dir = scratch(t);
      const xml = (name: string, port?: number): string => `<domain type='qemu'><name>${name}</name><memory unit='MiB'>64</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices><emulator>${QEMU}</emulator>
    <graphics type='vnc' ${port ? `port='${port}' autoport='no'` : "autoport='yes'"} listen='127.0.0.1'/>
  </devices></domain>`;
      for (const n of ['a', 'b']) await svirtOk(dir, [...S, 'define', writeDomain(dir, n, xml(n))]);
      await svirtOk(dir, [...S, 'start', 'a', '--paused']);
      await svirtOk(dir, [...S, 'start', 'b', '--paused']);
      const a = (await svirtOk(dir, ['vncdisplay', 'a'])).trim();
      const b = (await svirtOk(dir, ['vncdisplay', 'b'])).trim();
      assert.match(a, /^127\.0\.0\.1:\d+$/);
      assert.notEqual(a, b, 'different displays');
      const portA = 5900 + Number(a.split(':')[1]);
      await svirtOk(dir, [...S, 'define', writeDomain(dir, 'c', xml('c', portA))]);
      const c = await svirt(dir, [...S, 'start', 'c', '--paused']);
      assert.notEqual(c.code, 0);
      assert.match(c.stderr, new RegExp(`vnc port ${portA} of 'c' is in use by guest`));
      assert.equal(countRows(dir, 'running'), 2, 'the refused start left nothing');
      await svirtOk(dir, [...S, 'destroy', 'a']);
      await svirtOk(dir, [...S, 'start', 'c', '--paused']);
      assert.equal((await svirtOk(dir, ['vncdisplay', 'c'])).trim(), a, "a's port, given back, serves c");
    },
  );
});
