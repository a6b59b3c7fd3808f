/**
 * virsh's snapshot commands through `svirt serve` (docs/snapshots.md, docs/remote.md): a shut-off
 * and a running guest's internal snapshots, the tree, revert, delete, a disk-only one, and
 * libvirt's error for a snapshot that does not exist; a running guest's disk-only snapshot
 * through virsh and python-libvirt (snapshotCreateXML with DISK_ONLY).
 */

/** The access modes (O_ACCMODE) of a process's fds to a file. */
function accessModes(pid: number, path: string): number[] {
  return readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== path) return [];
      const m = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      return m?.[1] ? [Number.parseInt(m[1], 8) & 3] : [];
    } catch {
      return [];
    }
  });
}
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { domainXml, readRunning, scratch, writeDomain } from '../helpers.js';
import { havePythonLibvirt, python, qemuDacVirshSkip, startServer, uri, virsh, virshOk } from './support.js';

const skip = qemuDacVirshSkip();

describe('svirt serve: snapshots with virsh', { skip, timeout: 300_000 }, () => {
  it('snapshot-create-as, -list, -info, -current, -revert, -delete, --disk-only', async (t) => {
    const dir = scratch(t);
    const img = join(dir, 'd.qcow2');
    assert.equal(spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, '16M']).status, 0);
    const s = (await startServer(t, dir)).socket;
    await virshOk(s, ['define', writeDomain(dir, 'v', domainXml('v', [{ path: img, dev: 'vda', format: 'qcow2' }]))]);
    assert.doesNotMatch(await virshOk(s, ['list', '--all', '--with-snapshot', '--name']), /^v$/m);
    assert.match(
      await virshOk(s, ['snapshot-create-as', 'v', 'off1', '--description', 'shut off']),
      /Domain snapshot off1 created/,
    );
    // virsh list's snapshot filter sees it
    assert.match(await virshOk(s, ['list', '--all', '--with-snapshot', '--name']), /^v$/m);
    assert.doesNotMatch(await virshOk(s, ['list', '--all', '--without-snapshot', '--name']), /^v$/m);
    await virshOk(s, ['start', 'v']);
    assert.match(await virshOk(s, ['snapshot-create-as', 'v', 'on1']), /Domain snapshot on1 created/);
    const list = await virshOk(s, ['snapshot-list', 'v']);
    assert.match(list, /off1\s+.*shutoff/);
    assert.match(list, /on1\s+.*running/);
    assert.match(await virshOk(s, ['snapshot-list', 'v', '--tree']), /off1\s*\n\s*\|\s*\n\s*\+- on1/);
    assert.match(await virshOk(s, ['snapshot-list', 'v', '--parent']), /on1\s+.*running\s+off1/);
    assert.match(await virshOk(s, ['snapshot-list', 'v', '--roots', '--name']), /^off1\s*$/m);
    const info = await virshOk(s, ['snapshot-info', 'v', '--current']);
    assert.match(info, /Name:\s+on1/);
    assert.match(info, /Parent:\s+off1/);
    assert.match(info, /Location:\s+internal/);
    assert.match(await virshOk(s, ['snapshot-parent', 'v', 'on1']), /off1/);
    assert.match(await virshOk(s, ['snapshot-dumpxml', 'v', 'off1']), /<description>shut off<\/description>/);
    await virshOk(s, ['snapshot-revert', 'v', 'on1']);
    assert.match(await virshOk(s, ['domstate', 'v']), /running/);
    const wrong = await virsh(s, ['snapshot-revert', 'v', 'off1']);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /shut domain 'v' off before reverting/);
    const none = await virsh(s, ['snapshot-info', 'v', 'nope']);
    assert.match(none.stderr, /Domain snapshot not found: no domain snapshot with matching name 'nope'/);
    assert.match((await virsh(s, ['snapshot-create-as', 'v', 'ro'], { readonly: true })).stderr, /read only access/);
    await virshOk(s, ['snapshot-delete', 'v', 'on1']);
    await virshOk(s, ['destroy', 'v']);
    await virshOk(s, ['snapshot-revert', 'v', 'off1']);
    assert.match(await virshOk(s, ['snapshot-current', 'v', '--name']), /off1/);
    // Disk-only: an overlay, and the definition now names it over the old image.
    assert.match(await virshOk(s, ['snapshot-create-as', 'v', 'ext', '--disk-only']), /Domain snapshot ext created/);
    assert.match(await virshOk(s, ['domblklist', 'v']), new RegExp(`vda\\s+${join(dir, 'd.ext')}`));
    assert.match(await virshOk(s, ['snapshot-list', 'v', '--external', '--name']), /^ext\s*$/m);
    assert.match((await virsh(s, ['snapshot-revert', 'v', 'ext'])).stderr, /libvirt 9 refuses it too/);
    // off1 is in d.qcow2, now under the overlay: no revert across it; delete reaches the image under it.
    assert.match((await virsh(s, ['snapshot-revert', 'v', 'off1'])).stderr, /does not revert across an external snapshot/);
    await virshOk(s, ['snapshot-delete', 'v', 'ext', '--metadata']);
    await virshOk(s, ['snapshot-delete', 'v', 'off1']);
    assert.equal((await virshOk(s, ['snapshot-list', 'v', '--name'])).trim(), '');
    assert.doesNotMatch(spawnSync('qemu-img', ['snapshot', '-l', img], { encoding: 'utf8' }).stdout, /off1/);
    // undefine with snapshot metadata: refused, unless --snapshots-metadata (VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA).
    await virshOk(s, ['snapshot-create-as', 'v', 'last']);
    const refused = await virsh(s, ['undefine', 'v']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /cannot undefine domain 'v' with 1 snapshot\b/);
    await virshOk(s, ['undefine', 'v', '--snapshots-metadata']);
    assert.match((await virsh(s, ['dominfo', 'v'])).stderr, /failed to get domain|not found/i);
  });

  it('a running guest: virsh --disk-only --diskspec and python snapshotCreateXML(DISK_ONLY) live', async (t) => {
    const dir = scratch(t);
    const img = join(dir, 'd.qcow2');
    assert.equal(spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, '16M']).status, 0);
    const s = (await startServer(t, dir)).socket;
    await virshOk(s, ['define', writeDomain(dir, 'w', domainXml('w', [{ path: img, dev: 'vda', format: 'qcow2' }]))]);
    await virshOk(s, ['start', 'w']);
    const top = join(dir, 'top.qcow2');
    assert.match(
      await virshOk(s, ['snapshot-create-as', 'w', 'l1', '--disk-only', '--diskspec', `vda,snapshot=external,file=${top}`]),
      /Domain snapshot l1 created/,
    );
    assert.match(await virshOk(s, ['domblklist', 'w']), new RegExp(`vda\\s+${top}`));
    assert.match(await virshOk(s, ['domblklist', 'w', '--inactive']), new RegExp(`vda\\s+${top}`));
    const pid = readRunning(dir).find((r) => r.name === 'w')?.pid ?? 0;
    assert.deepEqual([...new Set(accessModes(pid, img))], [0], 'QEMU holds the base O_RDONLY');
    assert.deepEqual([...new Set(accessModes(pid, top))], [2], 'and the overlay O_RDWR');
    assert.equal(statSync(img).uid, 0, 'the base is no longer the guest’s');
    assert.notEqual(statSync(top).uid, 0, 'the overlay is');
    assert.match(
      (await virsh(s, ['snapshot-create-as', 'w', 'ro', '--disk-only'], { readonly: true })).stderr,
      /read only access/,
    );
    if (havePythonLibvirt()) {
      const script = join(dir, 'snap.py');
      writeFileSync(
        script,
        "import sys, libvirt\nc = libvirt.open(sys.argv[1])\nd = c.lookupByName('w')\n" +
          "s = d.snapshotCreateXML(\"<domainsnapshot><name>py1</name><disks><disk name='vda' snapshot='external'>" +
          '<source file=\'" + sys.argv[2] + "\'/></disk></disks></domainsnapshot>", libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY)\n' +
          'print(s.getName(), d.XMLDesc(0).count("<backingStore type="))\n',
      );
      const second = join(dir, 'py.qcow2');
      const r = await python(script, [uri(s), second]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^py1 2$/m, 'a chain of three: two backing layers');
      assert.deepEqual([...new Set(accessModes(pid, top))], [0], 'the first overlay is now read-only');
      assert.deepEqual([...new Set(accessModes(pid, second))], [2]);
    } else t.diagnostic('python3-libvirt is not installed: the python part did not run');
    await virshOk(s, ['destroy', 'w']);
    assert.equal(statSync(top).uid, 0, 'given back at stop');
  });
});
