import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers.js';
import { haveVirsh } from '../remote/support.js';
import { hostsSkip, makeHosts } from '../support/hosts.js';
import { ORIGINAL, assertRunsOn, traces } from './support.js';
import { copyXml, holds, imagePath, makeSourceImage, ownerOf, virsh } from './copy-support.js';

describe('svirt migrate --copy-storage-all (dac,landlock)', { skip: hostsSkip() }, () => {
  for (const format of ['qcow2', 'raw'] as const)
    it(`copies a ${format} disk to a host with its own storage and back: content, owners and stores right`, async (t) => {
      const [h1, h2] = makeHosts(t, 2);
      assert.ok(h1 && h2);
      await Promise.all([h1.serve(), h2.serve()]);
      const dir = tempDir(t, 'svirt-copy-');
      const src = imagePath(dir, h1, format);
      const dst = imagePath(dir, h2, format);
      makeSourceImage(src, format);
      const x1 = copyXml(undefined, dir, src, format, h1);
      const x2 = copyXml(undefined, dir, dst, format, h2);
      await h1.svirtOk(['define', x1]);
      await h1.svirtOk(['start', 'mig']);
      const before = await assertRunsOn(h1, src);
      assert.ok(!existsSync(dst), 'the destination has no image yet');
      const r = await h1.svirt(['migrate', '--live', '--copy-storage-all', '--verbose', '--xml', x2, 'mig', h2.uri]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /Copying storage: \[100 %\]/, 'the disk copy shows its progress before the memory');
      const after = await assertRunsOn(h2, dst);
      assert.notEqual(after.uid, before.uid);
      assert.ok(holds(dst, format, 0x5a, '0', '1M') && holds(dst, format, 0xa5, '31M', '1M'), 'the copy holds the content');
      assert.deepEqual(ownerOf(src), ORIGINAL, "the source's image is back to its original owner (it never changed hands)");
      assert.deepEqual(traces(h1), { running: 0, reserved: 0, remembered: 0 });
      // Back: the source's own file exists and has the right size, so it is copied into.
      const back = await h2.svirt(['migrate', '--live', '--copy-storage-all', '--xml', x1, 'mig', h1.uri]);
      assert.equal(back.code, 0, back.stderr);
      await assertRunsOn(h1, src);
      assert.deepEqual(traces(h2), { running: 0, reserved: 0, remembered: 0 });
      assert.deepEqual(ownerOf(dst), { uid: 0, gid: 0, mode: 0o600 }, "h2's image is back as h2 created it");
      assert.ok(holds(src, format, 0x5a, '0', '1M'), 'the content came back');
      for (const h of [h1, h2])
        assert.deepEqual(
          readdirSync(join(h.stateDir, 'run', 'monitor')).filter((f) => f.endsWith('.nbd')),
          [],
          `${h.name}: no export socket left`,
        );
      await h1.svirtOk(['destroy', 'mig']);
      assert.deepEqual(ownerOf(src), ORIGINAL);
    });
});

describe(
  'virsh migrate --copy-storage-all through svirt serve',
  { skip: hostsSkip() || (haveVirsh() ? false : 'virsh is not installed') },
  () => {
    it('plain (client-driven) there, --p2p back: the disk copied each way, nothing left behind', async (t) => {
      const [h1, h2] = makeHosts(t, 2);
      assert.ok(h1 && h2);
      const dir = tempDir(t, 'svirt-copy-virsh-');
      const src = imagePath(dir, h1, 'raw');
      const dst = imagePath(dir, h2, 'raw');
      // Each host's serve (and its QEMUs) sees the other's image directory empty.
      await Promise.all([h1.serve({}, { hide: [dirname(dst)] }), h2.serve({}, { hide: [dirname(src)] })]);
      makeSourceImage(src, 'raw');
      const x1 = copyXml(undefined, dir, src, 'raw', h1);
      const x2 = copyXml(undefined, dir, dst, 'raw', h2);
      await h1.svirtOk(['define', x1]);
      await h1.svirtOk(['start', 'mig']);
      await assertRunsOn(h1, src);
      const there = virsh(h1.uri, ['migrate', '--live', '--copy-storage-all', '--xml', x2, 'mig', h2.uri]);
      assert.equal(there.code, 0, `there: ${there.out}`);
      const b = await assertRunsOn(h2, dst);
      assert.deepEqual(
        readdirSync(`/proc/${b.pid}/root${dirname(src)}`),
        [],
        "the destination's QEMU does not see the source's storage",
      );
      assert.ok(holds(dst, 'raw', 0x5a, '0', '1M'));
      assert.deepEqual(traces(h1), { running: 0, reserved: 0, remembered: 0 });
      assert.deepEqual(ownerOf(src), ORIGINAL);
      const back = virsh(h2.uri, ['migrate', '--live', '--p2p', '--copy-storage-all', '--xml', x1, 'mig', h1.uri]);
      assert.equal(back.code, 0, `back: ${back.out}`);
      await assertRunsOn(h1, src);
      assert.deepEqual(traces(h2), { running: 0, reserved: 0, remembered: 0 });
      assert.match(virsh(h1.uri, ['dominfo', 'mig']).out, /State:\s+running/);
      // Without the flag the hosts are taken to share the image, and they do not: refused, the guest runs on.
      const shared = virsh(h1.uri, ['migrate', '--live', '--xml', x2, 'mig', h2.uri]);
      assert.notEqual(shared.code, 0);
      assert.match(shared.out, /do not share this storage|copy-storage-all/);
      await assertRunsOn(h1, src);
    });
  },
);
