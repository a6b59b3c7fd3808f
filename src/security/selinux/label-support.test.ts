/**
 * Files on a filesystem that keeps no SELinux label: a real ramfs mounted by the test (on
 * this kernel, which does not run SELinux, ramfs has no security.* or trusted.* xattrs and
 * answers EOPNOTSUPP, as an NFS or CIFS mount does to a label write under SELinux).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lsetxattr } from '../../host/native.js';
import type { GuestResource } from '../driver.js';
import { mountOf, unlabelledNote } from './label-support.js';
import { SELINUX_XATTR } from './labeller.js';
import { mountRamfs } from '../../../test/helpers.js';
import { IMAGE, labelOf, levelOf, skipFiles, world } from '../../../test/support/selinux-files.js';
import { disk, domain } from '../../../test/support/selinux.js';

describe('SelinuxDriver and a filesystem without labels (real ramfs)', { skip: skipFiles }, () => {
  it('starts: the file is used as it is, nothing is remembered for it, and a note names the filesystem', async (t) => {
    const ram = mountRamfs(t);
    if ('skip' in ram) {
      t.skip(ram.skip);
      return;
    }
    const w = world(t);
    const onRamfs = join(ram.dir, 'nfs-like.img');
    writeFileSync(onRamfs, 'x');
    assert.throws(() => lsetxattr(onRamfs, SELINUX_XATTR, `${IMAGE}:s0\0`), { code: 'EOPNOTSUPP' }, 'ramfs keeps no label here');
    const local = w.file('local.img');
    const def = domain('nolabel', 40, { disks: [disk(onRamfs), disk(local, { target: { dev: 'vdb', bus: 'virtio' } })] });
    const resources: GuestResource[] = [
      { path: onRamfs, role: 'disk', seclabels: [] },
      { path: local, role: 'disk', seclabels: [] },
    ];
    const label = await w.start(def, resources);
    assert.equal(labelOf(local), `${IMAGE}:${levelOf(label)}`, 'the other disk is labelled as usual');
    assert.deepEqual(w.memory.paths('selinux'), [local], 'nothing is remembered for the ramfs file');

    const notes = w.driver.fileNotes(def, label, resources);
    assert.deepEqual(notes, [
      `${onRamfs}: not relabelled: ramfs keeps no SELinux label; no virt_use_* boolean covers ramfs, the policy's rule for its type decides`,
    ]);
    assert.ok(w.driver.describe(def, label, resources, w.ctx).includes(notes[0] ?? '?'), 'the dry run says so too');

    await w.stop(def, label, resources);
    assert.equal(labelOf(local), undefined);
    assert.deepEqual(w.memory.paths('selinux'), []);
  });

  it('a row left by a set interrupted before it met EOPNOTSUPP is dropped at restore, not an error', (t) => {
    const ram = mountRamfs(t);
    if ('skip' in ram) {
      t.skip(ram.skip);
      return;
    }
    const w = world(t);
    const onRamfs = join(ram.dir, 'half.img');
    writeFileSync(onRamfs, 'x');
    const def = domain('half', 41, { disks: [disk(onRamfs)] });
    const resources: GuestResource[] = [{ path: onRamfs, role: 'disk', seclabels: [] }];
    const label = w.driver.genLabel(def, w.ctx);
    w.memory.remember('selinux', onRamfs, def.uuid, '<none>');
    for (const r of resources) w.driver.restoreResourceLabel(def, label, r, w.ctx);
    assert.deepEqual(w.memory.paths('selinux'), []);
  });
});

describe('label support, pure parts', () => {
  it("finds a file's mount in mountinfo by st_dev: its type and seclabel option", () => {
    const mountinfo = [
      '22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,seclabel',
      '40 22 0:45 / /srv/nfs rw,relatime shared:20 - nfs4 srv:/export rw,vers=4.2,addr=10.0.0.1',
    ].join('\n');
    assert.deepEqual(mountOf(mountinfo, 259 * 256 + 2), { fstype: 'ext4', seclabel: true });
    assert.deepEqual(mountOf(mountinfo, 45), { fstype: 'nfs4', seclabel: false });
    assert.equal(mountOf(mountinfo, 7), undefined);
  });

  it('names the boolean that governs an NFS or CIFS file, with its value when the kernel has one', () => {
    assert.equal(
      unlabelledNote('/srv/nfs/a.img', { name: 'nfs', boolean: 'virt_use_nfs' }, 'off'),
      '/srv/nfs/a.img: not relabelled: nfs keeps no SELinux label; the boolean virt_use_nfs (off) decides whether the guest may use it',
    );
    assert.match(
      unlabelledNote('/mnt/smb/b.img', { name: 'cifs', boolean: 'virt_use_samba' }),
      /the boolean virt_use_samba decides/,
    );
  });
});
