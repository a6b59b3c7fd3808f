import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { lgetxattr } from '../../src/host/native.js';
import { QmpClient } from '../../src/qemu/qmp-client.js';
import {
  countRows,
  domainXml,
  makeImage,
  owner,
  procStatus,
  readRunning,
  scratch,
  svirt,
  svirtOk,
  writeDomain,
  qemuAsRootSkip,
} from '../helpers.js';

const skip = qemuAsRootSkip('these stacks need root');
const ORIGINAL = { uid: 1000, gid: 1000, mode: 0o644 };

interface StackCase {
  readonly stack: string;
  readonly env: NodeJS.ProcessEnv;
}

/** Every stack this host can run; selinux and apparmor in their explicit userspace test modes. */
const STACKS: readonly StackCase[] = [
  { stack: 'dac,landlock', env: {} },
  { stack: 'landlock', env: {} },
  { stack: 'selinux,dac,landlock', env: { SVIRT_SELINUX_MODE: 'userspace-test' } },
  { stack: 'apparmor,dac,landlock', env: { SVIRT_APPARMOR_MODE: 'compile-only' } },
];

function selinuxLabel(path: string): string | undefined {
  return lgetxattr(path, 'security.selinux')?.toString().replace(/\0$/, '');
}

function guestLabels(dir: string, name: string): { uid?: number; level?: string } {
  const row = readRunning(dir).find((r) => r.name === name);
  assert.ok(row, `${name} runs`);
  const uid = /model='dac'[^>]*>\s*<label>\+(\d+):/.exec(row.live_xml)?.[1];
  const level = /<imagelabel>[^<]*:(s0:c\d+,c\d+)<\/imagelabel>/.exec(row.live_xml)?.[1];
  return { ...(uid ? { uid: Number(uid) } : {}), ...(level ? { level } : {}) };
}

function qmpPath(dir: string, name: string): string {
  const row = readRunning(dir).find((r) => r.name === name);
  return join(dir, 'run', 'monitor', `${row?.uuid ?? 'missing'}.sock`);
}

async function diskIo(dir: string, name: string, dev: string): Promise<void> {
  const q = await QmpClient.connect(qmpPath(dir, name));
  try {
    const backend = dev.startsWith('vd') ? `/machine/peripheral/disk-${dev}/virtio-backend` : `disk-${dev}`;
    const w = await q.hmp(`qemu-io -d ${backend} "write -P 0x6b 0 4k"`);
    assert.doesNotMatch(w, /error|denied|fail/i, `${name} writes ${dev}: ${w}`);
    const r = await q.hmp(`qemu-io -d ${backend} "read -P 0x6b 0 4k"`);
    assert.doesNotMatch(r, /error|denied|fail|verification/i, `${name} reads ${dev}: ${r}`);
  } finally {
    q.close();
  }
}

/** The file carries this guest's label (each driver of the stack that labels files). */
function assertLabelled(c: StackCase, dir: string, guest: string, path: string): void {
  const l = guestLabels(dir, guest);
  if (c.stack.includes('dac')) assert.equal(owner(path).uid, l.uid, `${path} belongs to ${guest}'s uid`);
  if (c.stack.includes('selinux'))
    assert.match(selinuxLabel(path) ?? '', new RegExp(`svirt_image_t:${l.level ?? 'x'}$`), `${path} has ${guest}'s MCS pair`);
}

function assertOriginal(path: string): void {
  assert.deepEqual(owner(path), ORIGINAL, `${path} has its original owner and mode`);
  assert.equal(selinuxLabel(path), undefined, `${path} has no SELinux label left`);
}

for (const c of STACKS) {
  describe(`guest lifecycle under ${c.stack} (real QEMU)`, { skip }, () => {
    it('hot-plugs a disk, uses it, unplugs it, and hands it to a second guest', async (t) => {
      const dir = scratch(t);
      const env = { ...c.env, SVIRT_APPARMOR_PROFILE_DIR: join(dir, 'apparmor') };
      const S = ['--security-driver', c.stack];
      const extra = makeImage(join(dir, 'extra.img'), 4, ORIGINAL, 0o644);
      for (const g of ['g1', 'g2']) {
        const img = makeImage(join(dir, `${g}.img`), 4);
        await svirtOk(dir, [...S, 'define', writeDomain(dir, g, domainXml(g, [{ path: img, dev: 'vda' }]))], env);
        await svirtOk(dir, [...S, 'start', g, '--paused'], env);
      }
      await svirtOk(dir, [...S, 'attach-disk', 'g1', extra, 'sdb'], env);
      assertLabelled(c, dir, 'g1', extra);
      assert.match(await svirtOk(dir, [...S, 'dumpxml', 'g1'], env), /<target dev='sdb' bus='scsi'\/>/);
      assert.doesNotMatch(
        await svirtOk(dir, [...S, 'dumpxml', 'g1', '--inactive'], env),
        /sdb/,
        'a live attach leaves the definition alone',
      );
      await diskIo(dir, 'g1', 'sdb');
      await svirtOk(dir, [...S, 'detach-disk', 'g1', 'sdb'], env);
      assertOriginal(extra);
      await svirtOk(dir, [...S, 'attach-disk', 'g2', extra, 'sdc', '--live', '--config'], env);
      assertLabelled(c, dir, 'g2', extra);
      await diskIo(dir, 'g2', 'sdc');
      assert.match(await svirtOk(dir, [...S, 'dumpxml', 'g2', '--inactive'], env), /sdc/, '--config keeps it in the definition');
      await svirtOk(dir, [...S, 'detach-disk', 'g2', 'sdc', '--live', '--config'], env);
      assertOriginal(extra);
      if (c.stack.startsWith('apparmor')) {
        assert.ok(existsSync(join(dir, 'apparmor')), 'the profile dir was written');
      }
    });

    it('inserts and ejects CD-ROM media, suspends and resumes', async (t) => {
      const dir = scratch(t);
      const env = { ...c.env, SVIRT_APPARMOR_PROFILE_DIR: join(dir, 'apparmor') };
      const S = ['--security-driver', c.stack];
      const img = makeImage(join(dir, 'cd-guest.img'), 4);
      const iso = makeImage(join(dir, 'media.iso'), 1, ORIGINAL, 0o644);
      const xml = domainXml('cd', [{ path: img, dev: 'vda' }]).replace(
        '  </devices>',
        "    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><target dev='hdc' bus='ide'/><readonly/></disk>\n  </devices>",
      );
      await svirtOk(dir, [...S, 'define', writeDomain(dir, 'cd', xml)], env);
      await svirtOk(dir, [...S, 'start', 'cd', '--paused'], env);
      await svirtOk(dir, [...S, 'change-media', 'cd', 'hdc', iso, '--insert'], env);
      assert.match(await svirtOk(dir, [...S, 'dumpxml', 'cd'], env), /media\.iso/);
      if (c.stack.includes('selinux'))
        assert.match(selinuxLabel(iso) ?? '', /virt_content_t:s0$/, 'read-only media get the content label');
      assert.equal(owner(iso).uid, ORIGINAL.uid, 'read-only media keep their owner');
      await svirtOk(dir, [...S, 'change-media', 'cd', 'hdc', '--eject'], env);
      assert.doesNotMatch(await svirtOk(dir, [...S, 'dumpxml', 'cd'], env), /media\.iso/);
      assertOriginal(iso);
      await svirtOk(dir, [...S, 'resume', 'cd'], env);
      assert.equal((await svirtOk(dir, [...S, 'domstate', 'cd'], env)).trim(), 'running');
      await svirtOk(dir, [...S, 'suspend', 'cd'], env);
      assert.equal((await svirtOk(dir, [...S, 'domstate', 'cd'], env)).trim(), 'paused');
    });

    it('saves to a file and restores with fresh labels; the file keeps none', async (t) => {
      const dir = scratch(t);
      const env = { ...c.env, SVIRT_APPARMOR_PROFILE_DIR: join(dir, 'apparmor') };
      const S = ['--security-driver', c.stack];
      const img = makeImage(join(dir, 'sv.img'), 4, ORIGINAL, 0o644);
      await svirtOk(dir, [...S, 'define', writeDomain(dir, 'sv', domainXml('sv', [{ path: img, dev: 'vda' }]))], env);
      await svirtOk(dir, [...S, 'start', 'sv', '--paused'], env);
      const before = guestLabels(dir, 'sv');
      await diskIo(dir, 'sv', 'vda');
      const file = join(dir, 'sv.save');
      await svirtOk(dir, [...S, 'save', 'sv', file], env);
      assert.equal(countRows(dir, 'running'), 0, 'the guest stopped');
      assertOriginal(img);
      assert.deepEqual(owner(file), { uid: 0, gid: 0, mode: 0o600 });
      assert.equal(selinuxLabel(file), undefined);
      await svirtOk(dir, [...S, 'restore', file], env);
      const after = guestLabels(dir, 'sv');
      if (before.level) assert.notEqual(after.level, before.level, 'a fresh MCS pair');
      assertLabelled(c, dir, 'sv', img);
      assert.deepEqual(owner(file), { uid: 0, gid: 0, mode: 0o600 }, 'the state file carries no guest owner');
      assert.equal(selinuxLabel(file), undefined, 'the state file carries no guest label');
      assert.equal((await svirtOk(dir, [...S, 'domstate', 'sv'], env)).trim(), 'paused', 'a paused guest comes back paused');
      await diskIo(dir, 'sv', 'vda'); // the restored guest still has its disk
      const bad = await svirt(dir, [...S, 'restore', img], env);
      assert.match(bad.stderr, /not an svirt save file/);
    });

    it('clones a shut-off guest; both run at once with their own labels', async (t) => {
      const dir = scratch(t);
      const env = { ...c.env, SVIRT_APPARMOR_PROFILE_DIR: join(dir, 'apparmor') };
      const S = ['--security-driver', c.stack];
      const img = makeImage(join(dir, 'src.img'), 4, ORIGINAL, 0o644);
      await svirtOk(dir, [...S, 'define', writeDomain(dir, 'src', domainXml('src', [{ path: img, dev: 'vda' }]))], env);
      await svirtOk(dir, [...S, 'clone', 'src', 'copy'], env);
      const copy = join(dir, 'copy-vda.img');
      assert.ok(existsSync(copy));
      assert.deepEqual(owner(copy), { uid: 0, gid: 0, mode: 0o644 }, 'the copy belongs to svirt, with the source mode');
      await Promise.all([
        svirtOk(dir, [...S, 'start', 'src', '--paused'], env),
        svirtOk(dir, [...S, 'start', 'copy', '--paused'], env),
      ]);
      const a = guestLabels(dir, 'src');
      const b = guestLabels(dir, 'copy');
      if (c.stack.includes('dac')) assert.notEqual(a.uid, b.uid);
      if (c.stack.includes('selinux')) assert.notEqual(a.level, b.level);
      const uuids = readRunning(dir).map((r) => r.uuid);
      assert.equal(new Set(uuids).size, 2);
      const pids = readRunning(dir).map((r) => r.pid ?? 0);
      for (const pid of pids) assert.ok(procStatus(pid).get('Name')?.startsWith('qemu'));
      assertLabelled(c, dir, 'copy', copy);
    });
  });
}

describe('a device operation that fails', { skip }, () => {
  it('leaves the guest usable: a PCI unplug the guest never answers keeps the disk attached and labelled', async (t) => {
    const dir = scratch(t);
    const S = ['--security-driver', 'dac,landlock'];
    const img = makeImage(join(dir, 'pci.img'), 4);
    const extra = makeImage(join(dir, 'pci-extra.img'), 4, ORIGINAL, 0o644);
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'pci', domainXml('pci', [{ path: img, dev: 'vda' }]))]);
    await svirtOk(dir, [...S, 'start', 'pci', '--paused']);
    await svirtOk(dir, [...S, 'attach-disk', 'pci', extra, 'vdb']);
    const r = await svirt(dir, [...S, 'detach-disk', 'pci', 'vdb']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /did not release device disk-vdb/);
    assert.match(await svirtOk(dir, [...S, 'dumpxml', 'pci']), /pci-extra\.img/, 'still attached');
    assert.equal(owner(extra).uid, guestLabels(dir, 'pci').uid, "still the guest's");
    await svirtOk(dir, [...S, 'suspend', 'pci']); // not "busy": the failed operation holds nothing
    await svirtOk(dir, [...S, 'destroy', 'pci']);
    assertOriginal(extra);
  });
});
