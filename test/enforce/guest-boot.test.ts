/**
 * The real guest (scripts/build-guest.sh: Debian's kernel and a busybox initramfs) boots to
 * its shell in both lab VMs, with the kernel enforcing SELinux or AppArmor on its QEMU. The
 * lab copies the image into the run folder (lab/boot.sh); QEMU runs under nested TCG, so
 * the boot takes minutes of the VM's time.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeDomain } from '../helpers.js';
import { consoleRun } from '../support/console-run.js';
import { GUEST_BANNER, guestOsXml } from '../support/guest-image.js';
import {
  guest,
  guestAppArmorLabel,
  labelAsImage,
  LabDirs,
  labSkip,
  parseContext,
  procLabel,
  svirtEntry,
  svirtOk,
  type LabMode,
} from './lab.js';

const mode: LabMode = process.env['SVIRT_LAB'] === 'apparmor' ? 'apparmor' : 'selinux';
const skip = labSkip(mode);
const STACK = ['--security-driver', `${mode},dac,landlock`];
/** Nested TCG: about 8 min to the shell (measured: 470 s with the machine busy). */
const BOOT_MS = 1_200_000;
const IMAGE = '/mnt/guest';
/** What busybox's shell prints when it starts, after the image's banner. */
const SHELL = 'built-in shell (ash)';
const dirs = new LabDirs();
after(() => dirs.cleanup());

async function waitForText(path: string, text: string, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const now = existsSync(path) ? readFileSync(path, 'latin1') : '';
    if (now.includes(text) || Date.now() > deadline) return now;
    await new Promise((r) => setTimeout(r, 2000));
  }
}

describe(`the real guest boots confined by ${mode} (enforcing), dac and landlock`, { skip }, () => {
  it('reaches its shell on the serial port, its QEMU under the guest label', { timeout: BOOT_MS + 300_000 }, async () => {
    assert.ok(existsSync(join(IMAGE, 'vmlinuz')), `the lab put no guest image in ${IMAGE} (lab/boot.sh)`);
    const dir = dirs.make('svirt-enforce-boot-');
    const kernel = join(dir, 'vmlinuz');
    const initrd = join(dir, 'initrd.img');
    copyFileSync(join(IMAGE, 'vmlinuz'), kernel);
    copyFileSync(join(IMAGE, 'initrd.img'), initrd);
    labelAsImage(kernel);
    labelAsImage(initrd);
    const log = join(dir, 'serial.log');
    const xml = `<domain type='qemu'>
  <name>real</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  ${guestOsXml({ dir, kernel, initrd, version: '' }, 'pc', 'console=ttyS0 panic=-1 no_timer_check quiet')}
  <devices>
    <serial type='file'><source path='${log}'/><target port='0'/></serial>
    <console type='pty'><target type='virtio' port='1'/></console>
  </devices>
</domain>
`;
    await svirtOk(dir, [...STACK, 'define', writeDomain(dir, 'real', xml)]);
    await svirtOk(dir, [...STACK, 'start', 'real']);
    const g = guest(dir, 'real');
    if (mode === 'selinux') {
      const ctx = parseContext(procLabel(g.pid));
      assert.ok(['svirt_t', 'svirt_tcg_t'].includes(ctx.type), `QEMU runs as ${ctx.type}`);
      assert.match(ctx.level, /^s0:c\d+,c\d+$/);
    } else {
      assert.equal(procLabel(g.pid, 'apparmor'), guestAppArmorLabel(`svirt-${g.uuid}`));
    }
    // the banner, then the shell's own greeting a moment later: wait for the last of them
    const text = await waitForText(log, SHELL, BOOT_MS);
    assert.ok(
      text.includes(GUEST_BANNER),
      `no shell banner within ${BOOT_MS / 1000} s; the serial log ends:\n${text.slice(-1500)}`,
    );
    assert.ok(text.includes(SHELL), `the shell did not start after the banner; the serial log ends:\n${text.slice(-1500)}`);
    // a pty console: svirt allocated it, the monitor relays it to QEMU's socket (QEMU's end at
    // the guest's socket label); the guest's shell on hvc0 answers through it. Node alone takes
    // seconds to start under nested TCG, hence the long bound.
    const live = await svirtOk(dir, ['dumpxml', 'real']);
    const pty = /<console type='pty' tty='(\/dev\/pts\/\d+)'>/.exec(live)?.[1];
    assert.ok(pty, `the live XML shows the virtio console's pty:\n${live}`);
    const session = await consoleRun(
      dir,
      STACK,
      'real',
      'echo $((6*7))\n',
      /\n42\r?\n/,
      120_000,
      ['--devname', 'console1'],
      svirtEntry(),
    );
    assert.match(session.err, new RegExp(`Connected to domain 'real' \\(console1, ${pty}\\)`), session.err);
    assert.match(session.out, /\n42\r?\n/, `the shell on hvc0 answered through the relay:\n${session.out.slice(-1500)}`);
    assert.equal(session.code, 0, session.err);
    await svirtOk(dir, [...STACK, 'destroy', 'real']);
  });
});
