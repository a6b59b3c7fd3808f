/**
 * `<filesystem>` with virtiofs end to end: real QEMU, QEMU's virtiofsd (Debian 12), the
 * dac + landlock stack, and the real guest image, which mounts the tag and reads and writes
 * the shared folder through its serial console.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findVirtiofsd } from '../../src/lifecycle/filesystems.js';
import {
  owner,
  procStatus,
  qemuAsRootSkip,
  readRunning,
  scratch,
  svirt,
  svirtOk,
  waitFor,
  writeDomain,
  QEMU,
  processesByCmdline,
} from '../helpers.js';
import { GUEST_BANNER, guestImage, guestImageSkip, guestOsXml, type GuestImage } from '../support/guest-image.js';

const skip = qemuAsRootSkip() || (findVirtiofsd() === undefined ? 'no virtiofsd installed' : false);
const S = ['--security-driver', 'dac,landlock'];
const BOOT_MS = 180_000;
const MEMORY = "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>";

function fsXml(source: string, tag: string, readonly = false): string {
  return `    <filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='${source}'/><target dir='${tag}'/>${
    readonly ? '<readonly/>' : ''
  }</filesystem>`;
}

function domain(name: string, os: string, devices: string, memory = MEMORY): string {
  return `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  ${memory}
  ${os}
  <devices>
    <emulator>${QEMU}</emulator>
${devices}
  </devices>
</domain>
`;
}

/** Live virtiofsd processes serving `source`, with their uid. */
function virtiofsds(source: string): { pid: number; uid: number }[] {
  return processesByCmdline((cmd) => cmd.includes('virtiofsd\0') && cmd.includes(source)).map((pid) => ({
    pid,
    uid: Number(procStatus(pid).get('Uid')?.split(/\s+/)[0]),
  }));
}

function guestUid(dir: string, name: string): number {
  const rec = readRunning(dir).find((r) => r.name === name);
  return Number(/model='dac'[^>]*>\s*<label>\+(\d+):/.exec(rec?.live_xml ?? '')?.[1]);
}

/** Two shared dirs: `rw` (a file in it) and `ro` (read-only share), the host's owner 1000. */
function shares(dir: string): { rw: string; ro: string } {
  const rw = join(dir, 'share-rw');
  const ro = join(dir, 'share-ro');
  for (const d of [rw, ro]) mkdirSync(d, { mode: 0o755 });
  writeFileSync(join(rw, 'hello.txt'), 'hello from the host\n', { mode: 0o644 });
  writeFileSync(join(ro, 'notes.txt'), 'read-only notes\n', { mode: 0o644 });
  return { rw, ro };
}

interface Console {
  text(): string;
  /** Types `cmd; echo MARK-$((20+22))` a few bytes at a time and waits for `MARK-42` (the UART's FIFO is small). */
  run(cmd: string, mark: string): Promise<boolean>;
}

/** The guest's serial console on a UNIX socket: what it printed, and a way to type. */
function console(path: string, t: TestContext): Promise<Console> {
  return new Promise((resolve, reject) => {
    let text = '';
    const sock: Socket = connect(path);
    sock.on('data', (d: Buffer) => (text += d.toString('latin1')));
    sock.on('error', reject);
    const run = async (cmd: string, mark: string): Promise<boolean> => {
      const line = `${cmd}; echo ${mark}-$((20+22))\n`;
      for (let i = 0; i < line.length; i += 8) {
        sock.write(line.slice(i, i + 8));
        await new Promise((r) => setTimeout(r, 30));
      }
      return waitFor(() => text.includes(`${mark}-42`), 60_000, 100);
    };
    sock.on('connect', () => resolve({ text: () => text, run }));
    t.after(() => sock.destroy());
  });
}

describe('shared folders (virtiofsd under the guest confinement)', { skip }, () => {
  it('refuses a share without shared memory, and a 9p one, at define', async (t) => {
    const dir = scratch(t, 'svirt-fs-');
    const { rw } = shares(dir);
    const os = "<os><type arch='x86_64' machine='pc'>hvm</type></os>";
    const noMemory = await svirt(dir, [...S, 'define', writeDomain(dir, 'm', domain('m', os, fsXml(rw, 'tag'), ''))]);
    assert.equal(noMemory.code, 1);
    assert.match(noMemory.stderr, /virtiofs needs shared guest memory: add <memoryBacking><source type='memfd'\/>/);
    const ninep = `    <filesystem type='mount' accessmode='mapped'><source dir='${rw}'/><target dir='tag'/></filesystem>`;
    const r = await svirt(dir, [...S, 'define', writeDomain(dir, 'p', domain('p', os, ninep))]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /filesystem driver "path": only virtiofs is supported/);
  });

  it('starts virtiofsd as the guest uid on exactly its tree; stop ends it and gives the dir back', async (t) => {
    const dir = scratch(t, 'svirt-fs-');
    const { rw, ro } = shares(dir);
    const os = "<os><type arch='x86_64' machine='pc'>hvm</type></os>";
    const xml = domain('fs', os, `${fsXml(rw, 'rwshare')}\n${fsXml(ro, 'roshare', true)}`);
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'fs', xml)]);
    const before = owner(rw);
    await svirtOk(dir, [...S, 'start', 'fs', '--paused']);
    const uid = guestUid(dir, 'fs');
    const [d] = virtiofsds(rw);
    assert.ok(d, 'virtiofsd runs for the share');
    assert.equal(d.uid, uid, 'as the guest uid on the host (root only inside its user namespace)');
    const st = procStatus(d.pid);
    assert.equal(st.get('NoNewPrivs'), '1');
    assert.match(
      readFileSync(`/proc/${d.pid}/uid_map`, 'utf8'),
      new RegExp(`^\\s*0\\s+${uid}\\s+1\\s*$`),
      'root there is the guest uid',
    );
    assert.equal(owner(rw).uid, uid, 'the writable share is the guest’s while it runs');
    assert.equal(owner(ro).uid, before.uid, 'a read-only share keeps its owner');
    assert.equal(virtiofsds(ro).length, 1);
    assert.deepEqual(readdirSync(join(dir, 'run', 'helpers')), [], 'no vhost-user socket path is left for anyone to connect to');
    await svirtOk(dir, [...S, 'destroy', 'fs']);
    assert.ok(await waitFor(() => virtiofsds(rw).length === 0 && virtiofsds(ro).length === 0, 5000), 'virtiofsd ended');
    assert.deepEqual(owner(rw), before, 'the share has its owner and mode back');
  });

  it(
    'the real guest mounts the tag, reads the host file, writes its own, and cannot write the read-only share',
    { skip: guestImageSkip(), timeout: BOOT_MS + 60_000 },
    async (t) => {
      const image = guestImage() as GuestImage;
      const dir = scratch(t, 'svirt-fs-');
      const { rw, ro } = shares(dir);
      const serial = join(dir, 'serial.sock');
      const devices = [
        fsXml(rw, 'rwshare'),
        fsXml(ro, 'roshare', true),
        `    <serial type='unix'><source mode='bind' path='${serial}'/><target port='0'/></serial>`,
      ].join('\n');
      await svirtOk(dir, [...S, 'define', writeDomain(dir, 'guest', domain('guest', guestOsXml(image), devices))]);
      await svirtOk(dir, [...S, 'start', 'guest']);
      const uid = guestUid(dir, 'guest');
      assert.ok(existsSync(serial));
      const tty = await console(serial, t);
      assert.ok(await waitFor(() => tty.text().includes(GUEST_BANNER), BOOT_MS, 500), `no shell:\n${tty.text().slice(-1500)}`);
      const steps: [string, string][] = [
        ['mkdir -p /mnt/rw /mnt/ro && mount -t virtiofs rwshare /mnt/rw && mount -t virtiofs roshare /mnt/ro', 'MOUNTED'],
        ['cat /mnt/rw/hello.txt /mnt/ro/notes.txt', 'READ'],
        ['echo from-the-guest > /mnt/rw/guest.txt && echo WR""OTE', 'WRITE'],
        ['echo x > /mnt/ro/x.txt || echo RO-RE""FUSED', 'READONLY'],
      ];
      for (const [cmd, mark] of steps) {
        assert.ok(await tty.run(cmd, mark), `no ${mark} from the guest:\n${tty.text().slice(-2000)}`);
      }
      const text = tty.text();
      assert.match(text, /hello from the host/);
      assert.match(text, /read-only notes/);
      // (typed as WR""OTE and RO-RE""FUSED: only the shell's output has them whole)
      assert.match(text, /WROTE/);
      assert.match(text, /RO-REFUSED/, 'the read-only share refuses a write');
      assert.equal(readFileSync(join(rw, 'guest.txt'), 'utf8'), 'from-the-guest\n');
      assert.equal(owner(join(rw, 'guest.txt')).uid, uid, 'what the guest writes is its uid’s on the host');
      assert.equal(existsSync(join(ro, 'x.txt')), false);
      await svirtOk(dir, [...S, 'destroy', 'guest']);
      assert.ok(await waitFor(() => virtiofsds(rw).length === 0, 5000));
    },
  );
});
