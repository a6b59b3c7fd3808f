/**
 * pty consoles: svirt allocates each pty and svirt-monitor relays it to a socket QEMU gets
 * (src/lifecycle/pty-relay.ts), so QEMU holds no pty and no driver grants it /dev/pts. The
 * guest image boots under landlock alone (the stack whose /dev/pts rule used to reach every
 * guest's console): `svirt console` runs a command, a pty channel has its own pty, the monitor
 * idles once the session left, and a stale console lock goes with the guest. Paused guests
 * under none and dac,landlock: the pty's owner, and no console once its monitor is gone.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { qemuAsRootSkip, readRunning, scratch, svirt, svirtOk, waitFor, writeDomain, QEMU } from '../helpers.js';
import { consoleRun } from '../support/console-run.js';
import { GUEST_BANNER, guestImage, guestImageSkip, ptyGuestXml, type GuestImage } from '../support/guest-image.js';

const BOOT_MS = 180_000;

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** The files a process has open that are ptys or the pty multiplexer. */
function ptyFds(pid: number): string[] {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return []; // gone (or a zombie)
  }
  return fds
    .map((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return ''; // closed meanwhile
      }
    })
    .filter((l) => l === '/dev/ptmx' || l.startsWith('/dev/pts/'));
}

function ptyOf(xml: string, element: string): string | undefined {
  return new RegExp(`<${element} type='pty'>\\s*<source path='(/dev/pts/\\d+)'/>`).exec(xml)?.[1];
}

describe('pty consoles relayed by the monitor (real QEMU, TCG)', () => {
  it(
    'under landlock alone: QEMU holds no pty, the console runs a command, a pty channel is its own, the lock goes at stop',
    { skip: qemuAsRootSkip() || guestImageSkip(), timeout: BOOT_MS + 120_000 },
    async (t) => {
      const S = ['--security-driver', 'landlock'];
      const image = guestImage() as GuestImage;
      const dir = scratch(t);
      const log = join(dir, 'serial.log');
      const channelXml = "\n    <channel type='pty'><target type='virtio' name='org.svirt.test.0'/></channel>";
      const xml = ptyGuestXml(image, 'guest', log, channelXml);
      await svirtOk(dir, [...S, 'define', writeDomain(dir, 'guest', xml)]);
      await svirtOk(dir, [...S, 'start', 'guest']);
      const live = await svirtOk(dir, ['dumpxml', 'guest']);
      const serial = ptyOf(live, 'serial');
      const channel = ptyOf(live, 'channel');
      assert.ok(serial && channel, `the live XML shows both ptys:\n${live}`);
      assert.notEqual(serial, channel);
      assert.match(live, new RegExp(`<console type='pty' tty='${serial}'>`));
      const rec = readRunning(dir)[0];
      assert.ok(rec?.pid && rec.monitorPid);
      assert.deepEqual(ptyFds(rec.pid), [], 'QEMU has no pty open');
      assert.equal(ptyFds(rec.monitorPid).filter((l) => l === '/dev/ptmx').length, 2, 'the monitor holds both masters');
      const profile = await svirtOk(dir, [...S, 'profile', 'guest', '--driver', 'landlock']);
      assert.doesNotMatch(profile, /^allow \/dev\/(pts|ptmx)/m, 'no pty right in the ruleset');

      const booted = await waitFor(() => existsSync(log) && readFileSync(log, 'latin1').includes(GUEST_BANNER), BOOT_MS, 500);
      assert.ok(booted, `no banner within ${BOOT_MS / 1000} s:\n${readFileSync(log, 'latin1').slice(-2000)}`);
      const session = await consoleRun(dir, S, 'guest', 'echo $((6*7))\n', /\r?\n42\r?\n/, 60_000);
      assert.equal(session.code, 0, session.err);
      assert.match(session.out, /\n42\r?\n/, `console output:\n${session.out}`);
      assert.match(session.err, new RegExp(`\\(serial0, ${serial}\\)`));

      const before = cpuTicks(rec.monitorPid);
      await new Promise((r) => setTimeout(r, 1500));
      const used = cpuTicks(rec.monitorPid) - before;
      assert.ok(used <= 10, `the monitor idles once the session left (${used} ticks in 1.5 s)`);

      const chan = await consoleRun(dir, S, 'guest', '', /$^/, 3000, ['--devname', 'org.svirt.test.0']);
      assert.match(chan.err, new RegExp(`\\(channel0, ${channel}\\)`), chan.err);
      const again = await consoleRun(dir, S, 'guest', 'echo again-$((2+3))\n', /again-5/, 60_000);
      assert.match(again.out, /again-5/, 'a new session after the others left');

      // a lock whose holder is gone (a killed session) goes with the guest
      const uuid = rec.uuid;
      const lock = join(dir, 'run', 'monitor', `${uuid}.serial0.console`);
      writeFileSync(lock, '2147483 1\n', { mode: 0o600 });
      await svirtOk(dir, [...S, 'destroy', 'guest']);
      assert.ok(!existsSync(lock), 'the stale console lock was removed');
      assert.ok(!existsSync(join(dir, 'run', 'monitor', `${uuid}.channel0.console`)));
    },
  );

  for (const stack of ['none', 'dac,landlock']) {
    it(
      `paused under ${stack}: the pty is svirt's own, and no console once its monitor is gone`,
      { skip: qemuAsRootSkip(), timeout: 60_000 },
      async (t) => {
        const S = ['--security-driver', stack];
        const dir = scratch(t);
        const xml = `<domain type='qemu'><name>p</name><memory unit='MiB'>64</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices><emulator>${QEMU}</emulator><serial type='pty'><target port='0'/></serial></devices></domain>`;
        await svirtOk(dir, [...S, 'define', writeDomain(dir, 'p', xml)]);
        await svirtOk(dir, [...S, 'start', 'p', '--paused']);
        const live = await svirtOk(dir, ['dumpxml', 'p']);
        const pty = ptyOf(live, 'serial');
        assert.ok(pty, live);
        const st = statSync(pty);
        // No guest opens it: it is svirt's own (root here), 0600, under every stack.
        assert.equal(st.uid, 0, 'the pty is svirt’s own');
        assert.equal(st.mode & 0o777, 0o600);
        const profile = await svirtOk(dir, ['profile', 'p', '--driver', stack]);
        assert.match(profile, /^serial0: \/dev\/pts\/N allocated by svirt, relayed by svirt-monitor; QEMU gets a socket/m);
        assert.match(profile, /svirt's own, 0600, label unchanged: no driver grants it to the guest/);
        if (stack !== 'none') assert.match(profile, /apparmor\/landlock: no \/dev\/ptmx/);
        const rec = readRunning(dir)[0];
        assert.ok(rec?.monitorPid);
        const ok = await consoleRun(dir, S, 'p', '', /$^/, 3000);
        assert.match(ok.err, /Connected to domain 'p'/);

        process.kill(rec.monitorPid, 'SIGKILL');
        const monitorPid = rec.monitorPid;
        await waitFor(() => ptyFds(monitorPid).length === 0, 5000);
        const gone = await svirt(dir, [...S, 'console', 'p']);
        assert.notEqual(gone.code, 0);
        assert.match(gone.stderr, /^error: .*the monitor of 'p' no longer holds/m);
        await svirtOk(dir, [...S, 'destroy', 'p']);
      },
    );
  }
});
