/**
 * virsh's snapshot commands through `svirt serve` (docs/snapshots.md, docs/remote.md): a shut-off
 * and a running guest's internal snapshots, the tree, revert, delete, a disk-only one, and
 * libvirt's error for a snapshot that does not exist.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { domainXml, scratch, writeDomain } from '../helpers.js';
import { qemuDacVirshSkip, startServer, virsh, virshOk } from './support.js';

const skip = qemuDacVirshSkip();

describe('svirt serve: snapshots with virsh', { skip, timeout: 300_000 }, () => {
  it('snapshot-create-as, -list, -info, -current, -revert, -delete, --disk-only', async (t) => {
    const dir = scratch(t);
    const img = join(dir, 'd.qcow2');
    assert.equal(spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, '16M']).status, 0);
    const s = (await startServer(t, dir)).socket;
    await virshOk(s, ['define', writeDomain(dir, 'v', domainXml('v', [{ path: img, dev: 'vda', format: 'qcow2' }]))]);
    assert.match(
      await virshOk(s, ['snapshot-create-as', 'v', 'off1', '--description', 'shut off']),
      /Domain snapshot off1 created/,
    );
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
});
