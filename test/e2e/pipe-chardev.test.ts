/**
 * `<serial type='pipe'>` with real QEMU: svirt opens the FIFOs itself and QEMU gets fds
 * (src/qemu/chardev-pipe.ts). The booting guest is the lab's Debian kernel with a busybox
 * shell as init on ttyS0 (lab/build-kernel.sh builds it once into /var/cache/svirt-lab).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chownSync,
  closeSync,
  constants,
  copyFileSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { lgetxattr } from '../../src/host/native.js';
import { countRows, domainXml, owner, qemuAsRootSkip, readRunning, scratch, svirt, svirtOk, writeDomain } from '../helpers.js';

const skip =
  qemuAsRootSkip('the dac driver needs root') || (existsSync('/etc/selinux/config') ? false : 'no SELinux policy installed');
const S = ['--security-driver', 'selinux,dac,landlock'];
const ENV = { SVIRT_SELINUX_MODE: 'userspace-test' };
const USER = { uid: 1000, gid: 1000, mode: 0o640 };
const IMAGE = 'system_u:object_r:svirt_image_t';
/** Every stack this host can run; selinux and apparmor in their userspace modes. */
const STACKS: readonly [string, NodeJS.ProcessEnv][] = [
  ['selinux,dac,landlock', ENV],
  ['apparmor,dac,landlock', { SVIRT_APPARMOR_MODE: 'compile-only' }],
  ['dac,landlock', {}],
  ['landlock', {}],
];

/** The lab's kernel and initramfs, if lab/build-kernel.sh has built them on this host. */
function labKernel(): { vmlinuz: string; initrd: string } | undefined {
  const cache = process.env['SVIRT_LAB_CACHE'] ?? '/var/cache/svirt-lab';
  if (!existsSync(cache)) return undefined;
  for (const d of readdirSync(cache).filter((n) => n.startsWith('kernel-'))) {
    const vmlinuz = join(cache, d, 'vmlinuz');
    const initrd = join(cache, d, 'initrd.img');
    if (existsSync(vmlinuz) && existsSync(initrd)) return { vmlinuz, initrd };
  }
  return undefined;
}

function mkfifo(path: string): string {
  const r = spawnSync('mkfifo', ['-m', USER.mode.toString(8), path], { encoding: 'utf8' });
  assert.equal(r.status, 0, `mkfifo ${path}: ${r.stderr}`);
  chownSync(path, USER.uid, USER.gid);
  return path;
}

function selinuxLabel(path: string): string | undefined {
  return lgetxattr(path, 'security.selinux')?.toString().replace(/\0+$/, '');
}

function running(dir: string, name: string): { pid: number; uid: number; level: string } {
  const row = readRunning(dir).find((r) => r.name === name);
  assert.ok(row?.pid, `${name} runs`);
  const uid = Number(/model='dac'[^>]*>\s*<label>\+(\d+):/.exec(row.live_xml)?.[1]);
  const level = /model='selinux'[\s\S]*?<imagelabel>[^<]*:(s0:c\d+,c\d+)<\/imagelabel>/.exec(row.live_xml)?.[1] ?? '?';
  return { pid: row.pid, uid, level };
}

/** The files QEMU holds open, by path (its fd table, read as root). */
function heldBy(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return ''; // closed between the two reads
    }
  });
}

/** Reads a FIFO without ever blocking: O_NONBLOCK and a poll every 50 ms, until `want` or the deadline. */
async function readUntil(fd: number, want: (text: string) => boolean, ms: number, seen: { text: string }): Promise<boolean> {
  const buf = Buffer.alloc(65536);
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      const n = readSync(fd, buf);
      seen.text += buf.subarray(0, n).toString('latin1');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
    if (want(seen.text)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

function pipeXml(name: string, path: string, kernel?: { vmlinuz: string; initrd: string }): string {
  const serial = `    <serial type='pipe'><source path='${path}'/><target port='0'/></serial>\n  </devices>`;
  let xml = domainXml(name, []).replace('  </devices>', serial);
  if (kernel) {
    xml = xml
      .replace("<memory unit='MiB'>64</memory>", "<memory unit='MiB'>256</memory>")
      .replace(
        '</type></os>',
        `</type><kernel>${kernel.vmlinuz}</kernel><initrd>${kernel.initrd}</initrd>` +
          '<cmdline>console=ttyS0 no_timer_check rdinit=/bin/busybox -- sh</cmdline></os>',
      );
  }
  return xml;
}

describe("<serial type='pipe'> (selinux,dac,landlock, real QEMU)", { skip }, () => {
  it('PATH.in and PATH.out: a booting guest prints to .out and reads what is written to .in', async (t) => {
    const lab = labKernel();
    if (!lab) {
      t.skip('no lab kernel on this host: run `bash lab/build-kernel.sh` once (as root)');
      return;
    }
    const dir = scratch(t);
    // Copies: labelling them must not touch the shared cache.
    const kernel = { vmlinuz: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.img') };
    copyFileSync(lab.vmlinuz, kernel.vmlinuz);
    copyFileSync(lab.initrd, kernel.initrd);
    const base = join(dir, 'console');
    const fifoIn = mkfifo(`${base}.in`);
    const fifoOut = mkfifo(`${base}.out`);
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'bb', pipeXml('bb', base, kernel))], ENV);
    await svirtOk(dir, [...S, 'start', 'bb'], ENV);
    const g = running(dir, 'bb');
    for (const f of [fifoIn, fifoOut]) {
      assert.equal(selinuxLabel(f), `${IMAGE}:${g.level}`, `${f} carries the guest label`);
      assert.equal(owner(f).uid, g.uid, `${f} belongs to the guest uid`);
    }
    const held = heldBy(g.pid);
    assert.ok(held.includes(fifoIn) && held.includes(fifoOut), `QEMU holds both FIFOs: ${held.join(' ')}`);
    assert.equal(existsSync(base), false, 'no PATH itself was needed');

    const reader = openSync(fifoOut, constants.O_RDONLY | constants.O_NONBLOCK);
    const writer = openSync(fifoIn, constants.O_WRONLY | constants.O_NONBLOCK); // QEMU reads: no ENXIO
    t.after(() => {
      closeSync(reader);
      closeSync(writer);
    });
    const seen = { text: '' };
    const prompt = await readUntil(reader, (s) => s.includes('/ # '), 120_000, seen);
    assert.ok(prompt, `the guest's shell prompt arrives on ${fifoOut}: ${seen.text.slice(-400)}`);
    assert.match(seen.text, /Linux version/, 'the kernel log came first');
    writeSync(writer, 'echo svirt-$((6*7))\n');
    const answered = await readUntil(reader, (s) => /svirt-42\r?\n/.test(s), 30_000, seen);
    assert.ok(answered, `the guest read the command from ${fifoIn} and answered: ${seen.text.slice(-400)}`);

    await svirtOk(dir, [...S, 'destroy', 'bb'], ENV);
    for (const f of [fifoIn, fifoOut]) {
      assert.deepEqual(owner(f), USER, `${f} has its owner back`);
      assert.equal(selinuxLabel(f), undefined, `${f} has no label left`);
    }
    assert.equal(countRows(dir, 'remembered'), 0);
  });

  for (const [stack, env] of STACKS) {
    it(`one FIFO under ${stack}: QEMU holds it both ways, and nothing waits for a reader or a writer`, async (t) => {
      const dir = scratch(t);
      const E = { ...env, SVIRT_APPARMOR_PROFILE_DIR: join(dir, 'apparmor') };
      const X = ['--security-driver', stack];
      const fifo = mkfifo(join(dir, 'single'));
      await svirtOk(dir, [...X, 'define', writeDomain(dir, 'one', pipeXml('one', fifo))], E);
      const started = Date.now();
      await svirtOk(dir, [...X, 'start', 'one'], E);
      t.diagnostic(`started in ${Date.now() - started} ms with nobody at the other end of ${fifo}`);
      const pid = readRunning(dir).find((r) => r.name === 'one')?.pid ?? 0;
      assert.ok(heldBy(pid).includes(fifo), 'QEMU holds the FIFO');
      if (stack.includes('dac')) assert.notEqual(owner(fifo).uid, USER.uid, "it is the guest's while it runs");
      if (stack.startsWith('selinux')) assert.equal(selinuxLabel(fifo), `${IMAGE}:${running(dir, 'one').level}`);
      if (stack.startsWith('apparmor')) {
        const rules = readdirSync(join(dir, 'apparmor')).filter((f) => f.endsWith('.files'));
        assert.match(
          readFileSync(join(dir, 'apparmor', rules[0] ?? '?'), 'utf8'),
          new RegExp(`"${fifo}" rw,`),
          'a rule for the FIFO',
        );
      }
      assert.equal((await svirtOk(dir, [...X, 'domstate', 'one'], E)).trim(), 'running');
      await svirtOk(dir, [...X, 'destroy', 'one'], E);
      assert.deepEqual(owner(fifo), USER);
      assert.equal(selinuxLabel(fifo), undefined);
    });
  }

  it('refuses a pipe path that is not a FIFO with one line, before anything is touched', async (t) => {
    const dir = scratch(t);
    const plain = join(dir, 'not-a-fifo');
    spawnSync('touch', [plain]);
    chownSync(plain, USER.uid, USER.gid);
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'bad', pipeXml('bad', plain))], ENV);
    const r = await svirt(dir, [...S, 'start', 'bad'], ENV);
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr, `error: cannot use "${plain}" for <serial type='pipe'>: it is a regular file, not a FIFO\n`);
    assert.equal(countRows(dir, 'running'), 0);
    assert.equal(countRows(dir, 'remembered'), 0);
    assert.equal(owner(plain).uid, USER.uid, 'its owner is untouched');
    assert.equal(selinuxLabel(plain), undefined, 'it got no label');
  });
});
