/**
 * A live external snapshot under an enforcing LSM, the manager confined (virtd_t or
 * svirt-manager, through the lab's launcher): the manager creates the overlay and runs qemu-img
 * on its fd, labels it for the guest, QEMU takes it over QMP, the base becomes a read-only
 * backing layer (SELinux: the backing label; AppArmor: `r` only in the guest's profile), the
 * guest keeps writing (to the overlay; the base's bytes stay), and the kernel logs no denial.
 * Everything is given back at stop. Runs only in the lab.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { domainXml } from '../helpers.js';
import { makeHosts } from '../support/hosts.js';
import {
  apparmorDenials,
  avcDenials,
  fileContext,
  filledWith,
  guest,
  imageBytes,
  kernelLog,
  LabDirs,
  labImage,
  labSkip,
  qmpConnect,
  qemuIo,
  run,
  svirtEntry,
  type LabMode,
} from './lab.js';

const mode: LabMode = process.env['SVIRT_LAB'] === 'apparmor' ? 'apparmor' : 'selinux';
const skip = labSkip(mode);
const dirs = new LabDirs();
after(() => dirs.cleanup());

/** The access modes (O_ACCMODE) of QEMU's fds to a file. */
function accessModes(pid: number, path: string): number[] {
  const out = run('sh', [
    '-c',
    `for f in /proc/${pid}/fd/*; do [ "$(readlink "$f")" = "${path}" ] && grep '^flags' /proc/${pid}/fdinfo/\${f##*/}; done`,
  ]);
  return [...out.out.matchAll(/flags:\s+([0-7]+)/g)].map((m) => Number.parseInt(m[1] ?? '0', 8) & 3);
}

describe(`live external snapshot under ${mode} (enforcing), the manager confined`, { skip }, () => {
  it('overlay labelled for the guest, base a read-only backing layer, no denial', async (t) => {
    const [h] = makeHosts(t, 1, `${mode},dac,landlock`, svirtEntry());
    assert.ok(h);
    if (mode === 'selinux') assert.equal(run('chcon', ['-t', 'virt_var_lib_t', h.stateDir]).code, 0);
    const dir = dirs.make('svirt-lab-snaplive-');
    const disk = labImage(join(dir, 'disk.img'));
    const before = fileContext(disk);
    const xml = join(dir, 'sl.xml');
    writeFileSync(xml, domainXml('sl', [{ path: disk, dev: 'vda' }]));
    await h.svirtOk(['define', xml]);
    await h.svirtOk(['start', 'sl']);
    const g = guest(h.stateDir, 'sl');
    // QEMU serves one monitor client at a time: the test's is closed while svirt needs it.
    const first = await qmpConnect(g.qmp);
    try {
      await qemuIo(first, 'vda', 'write -P 0x5a 0 4k');
    } finally {
      first.close();
    }
    assert.ok(filledWith(imageBytes(disk, 0, 4096), 0x5a), 'the guest writes its disk');
    const imageLabel = fileContext(disk);
    const mark = kernelLog.mark();
    const overlay = join(dir, 'disk.s1');
    await h.svirtOk(['snapshot-create-as', 'sl', 's1', '--disk-only']);
    const q = await qmpConnect(g.qmp);
    try {
      assert.deepEqual([...new Set(accessModes(g.pid, disk))], [0], 'QEMU holds the base read-only');
      assert.deepEqual([...new Set(accessModes(g.pid, overlay))], [2], 'and the overlay read-write');
      if (mode === 'selinux') {
        assert.equal(fileContext(overlay), imageLabel, "the overlay carries the guest's image label");
        assert.match(fileContext(disk), /:virt_content_t:s0$/, 'the base the label of a read-only backing layer');
      } else {
        const dirOf = process.env['SVIRT_APPARMOR_PROFILE_DIR'] ?? '/etc/apparmor.d/svirt';
        // The guest's files are in the profile's include (svirt-UUID.files), its rules in the abstraction.
        const profile = ['', '.files'].map((x) => readFileSync(join(dirOf, `svirt-${g.uuid}${x}`), 'utf8')).join('\n');
        t.diagnostic(profile);
        assert.match(profile, new RegExp(`"${overlay}" rwk`), 'the overlay is writable in the profile');
        assert.doesNotMatch(profile, new RegExp(`"${disk}" rwk`), 'the base is not');
        assert.match(profile, new RegExp(`"${disk}" rk`), 'the base is readable, as a backing layer');
      }
      await qemuIo(q, 'vda', 'write -P 0x6b 0 4k');
      await qemuIo(q, 'vda', 'read -P 0x6b 0 4k');
      assert.ok(filledWith(imageBytes(disk, 0, 4096), 0x5a), 'later writes do not reach the base');
      await new Promise((res) => setTimeout(res, 1000)); // the kernel log is written asynchronously
      const denials = mode === 'selinux' ? avcDenials(mark) : apparmorDenials(mark);
      assert.deepEqual(denials, [], `no denial during the snapshot and the writes after it:\n${denials.join('\n')}`);
    } finally {
      q.close();
    }
    await h.svirtOk(['destroy', 'sl']);
    assert.equal(fileContext(disk), before, 'the base given back');
  });
});
