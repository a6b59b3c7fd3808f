/**
 * SELinux parity for files a guest gets, under selinux,dac,landlock (SELinux in its userspace
 * test mode: real security.selinux xattrs, no process label), with real QEMU started paused:
 * a disk on a filesystem that keeps no labels, and a serial log svirt creates at start.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { lgetxattr } from '../../src/host/native.js';
import { QmpClient } from '../../src/qemu/qmp-client.js';
import {
  countRows,
  domainXml,
  makeImage,
  mountRamfs,
  owner,
  qemuAsRootSkip,
  readRunning,
  scratch,
  svirtOk,
  writeDomain,
} from '../helpers.js';

const skip =
  qemuAsRootSkip('the dac driver needs root') || (existsSync('/etc/selinux/config') ? false : 'no SELinux policy installed');
const S = ['--security-driver', 'selinux,dac,landlock'];
const ENV = { SVIRT_SELINUX_MODE: 'userspace-test' };
const ORIGINAL = { uid: 1000, gid: 1000, mode: 0o644 };
const IMAGE = 'system_u:object_r:svirt_image_t';

function selinuxLabel(path: string): string | undefined {
  return lgetxattr(path, 'security.selinux')?.toString().replace(/\0+$/, '');
}

/** The guest's uid and MCS level, from its live XML. */
function guestLabels(dir: string, name: string): { uid: number; level: string } {
  const row = readRunning(dir).find((r) => r.name === name);
  assert.ok(row, `${name} runs`);
  const uid = /model='dac'[^>]*>\s*<label>\+(\d+):/.exec(row.live_xml)?.[1];
  const level = /model='selinux'[\s\S]*?<imagelabel>[^<]*:(s0:c\d+,c\d+)<\/imagelabel>/.exec(row.live_xml)?.[1];
  assert.ok(uid !== undefined && level !== undefined, `${name} has a dac uid and an MCS level`);
  return { uid: Number(uid), level };
}

/** The paths the store remembers an original SELinux label of. */
function rememberedSelinux(dir: string): string[] {
  const db = new Database(join(dir, 'svirt.db'), { readonly: true, fileMustExist: true, timeout: 10_000 });
  try {
    return (db.prepare("SELECT path FROM remembered WHERE driver = 'selinux'").all() as { path: string }[]).map((r) => r.path);
  } finally {
    db.close();
  }
}

async function writeAndRead(dir: string, name: string, dev: string): Promise<void> {
  const row = readRunning(dir).find((r) => r.name === name);
  const q = await QmpClient.connect(join(dir, 'run', 'monitor', `${row?.uuid ?? 'missing'}.sock`));
  try {
    const backend = `/machine/peripheral/disk-${dev}/virtio-backend`;
    const w = await q.hmp(`qemu-io -d ${backend} "write -P 0x5a 0 4k"`);
    assert.doesNotMatch(w, /error|denied|fail/i, `${name} writes ${dev}: ${w}`);
    const r = await q.hmp(`qemu-io -d ${backend} "read -P 0x5a 0 4k"`);
    assert.doesNotMatch(r, /error|denied|fail|verification/i, `${name} reads ${dev}: ${r}`);
  } finally {
    q.close();
  }
}

describe('SELinux and the files of a guest (selinux,dac,landlock, real QEMU)', { skip }, () => {
  it('starts a guest whose disk is on a filesystem without labels; dominfo names the file and what decides', async (t) => {
    const dir = scratch(t);
    const ram = mountRamfs(t);
    if ('skip' in ram) {
      t.skip(ram.skip);
      return;
    }
    const onRamfs = makeImage(join(ram.dir, 'shared-store.img'), 4, ORIGINAL, ORIGINAL.mode);
    assert.throws(() => selinuxLabel(onRamfs), { code: 'EOPNOTSUPP' }, 'this ramfs keeps no security.selinux');
    const local = makeImage(join(dir, 'local.img'), 4, ORIGINAL, ORIGINAL.mode);
    const xml = domainXml('nfsish', [
      { path: onRamfs, dev: 'vda' },
      { path: local, dev: 'vdb' },
    ]);
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'nfsish', xml)], ENV);
    await svirtOk(dir, [...S, 'start', 'nfsish', '--paused'], ENV);
    const g = guestLabels(dir, 'nfsish');
    assert.equal(selinuxLabel(local), `${IMAGE}:${g.level}`, 'the local disk carries the guest label');
    assert.equal(owner(onRamfs).uid, g.uid, 'dac still hands the file to the guest uid');
    assert.deepEqual(rememberedSelinux(dir).includes(onRamfs), false, 'no SELinux original is remembered for it');
    await writeAndRead(dir, 'nfsish', 'vda');

    const note =
      `${onRamfs}: not relabelled: ramfs keeps no SELinux label; ` +
      "no virt_use_* boolean covers ramfs, the policy's rule for its type decides";
    const text = await svirtOk(dir, [...S, 'dominfo', 'nfsish'], ENV);
    assert.ok(text.includes(`File notes (selinux): ${note}\n`), text);
    const json = JSON.parse(await svirtOk(dir, [...S, '--json', 'dominfo', 'nfsish'], ENV)) as Record<string, unknown>;
    assert.deepEqual(json['File notes (selinux)'], [note]);

    await svirtOk(dir, [...S, 'destroy', 'nfsish'], ENV);
    assert.deepEqual(owner(onRamfs), ORIGINAL, 'its owner comes back');
    assert.equal(selinuxLabel(local), undefined, 'the local disk had no label, and has none again');
    assert.equal(countRows(dir, 'remembered'), 0);
  });

  it("gives a <serial type='file'> log created at start the guest's label, and takes it away at destroy", async (t) => {
    const dir = scratch(t);
    const img = makeImage(join(dir, 'con.img'), 4);
    mkdirSync(join(dir, 'logs'));
    const log = join(dir, 'logs', 'serial0.log');
    const serial = `    <serial type='file'><source path='${log}'/><target port='0'/></serial>\n  </devices>`;
    const xml = domainXml('con', [{ path: img, dev: 'vda' }]).replace('  </devices>', serial);
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'con', xml)], ENV);
    assert.equal(existsSync(log), false, 'the log does not exist before the first start');
    await svirtOk(dir, [...S, 'start', 'con', '--paused'], ENV);
    const g = guestLabels(dir, 'con');
    assert.equal(selinuxLabel(log), `${IMAGE}:${g.level}`, "the new log carries the guest's label");
    assert.equal(owner(log).uid, g.uid, "and belongs to the guest's uid");
    assert.ok(rememberedSelinux(dir).includes(log), 'its original (no label) is remembered');

    await svirtOk(dir, [...S, 'destroy', 'con'], ENV);
    assert.ok(existsSync(log), 'the log stays');
    assert.equal(selinuxLabel(log), undefined, 'its original, no label at all, is back');
    assert.equal(lgetxattr(log, 'trusted.svirt.selinux'), undefined, 'and nothing of svirt is left on it');
    assert.deepEqual(owner(log), { uid: 0, gid: 0, mode: 0o600 }, 'svirt made it: root 0600');
    assert.equal(countRows(dir, 'remembered'), 0);
  });
});
