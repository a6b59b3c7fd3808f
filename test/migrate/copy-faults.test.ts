import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { MIGRATION_CRASH_POINTS } from '../../src/lifecycle/crash-points.js';
import { tempDir, waitFor } from '../helpers.js';
import { hostsSkip, makeHosts, type TestHost } from '../support/hosts.js';
import { ORIGINAL, assertRunsOn, qemuPid, traces, vcpuStatus } from './support.js';
import { copyXml, holds, imagePath, makeSourceImage, ownerOf } from './copy-support.js';

/**
 * Where the guest is once both hosts have reconciled, for a crash at each step a
 * `--copy-storage-all` migration passes (docs/migration.md, "Copying the storage").
 * `held`: the source's svirt lost the Finish's answer; copied disks show no holder, so the
 * source keeps the guest paused (never run twice); the destination ran it or not.
 */
const EXPECTED: Readonly<Record<string, 'source' | 'destination' | 'held' | 'held, destination runs'>> = {
  'migrate-out:journaled': 'source',
  'migrate-out:mirrored': 'source',
  'migrate-out:streaming': 'source',
  'migrate-out:migrated': 'source',
  'migrate-out:confirmed': 'destination',
  'migrate-out:killed': 'destination',
  'migrate-in:prepared': 'source',
  'migrate-in:exported': 'source',
  'migrate-in:loaded': 'held',
  'migrate-in:unexported': 'held, destination runs',
  'migrate-in:resumed': 'held, destination runs',
};
/** Steps only a handover of shared images passes (test/migrate/faults.test.ts). */
const SHARED_ONLY = ['migrate-in:journaled', 'migrate-in:took-image', 'migrate-in:attached'];

const clean = (t: ReturnType<typeof traces>): boolean => t.running === 0 && t.reserved === 0 && t.remembered === 0;

async function reconcileBoth(a: TestHost, b: TestHost, until: () => boolean): Promise<boolean> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    await a.svirt(['reconcile', '--quiet']);
    await b.svirt(['reconcile', '--quiet']);
    if (until()) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

describe('--copy-storage-all faults: a crash at every step (issue 16)', { skip: hostsSkip() }, () => {
  it('covers every step of a copy (MIGRATION_CRASH_POINTS but the shared handover)', () => {
    assert.deepEqual([...MIGRATION_CRASH_POINTS].filter((p) => !SHARED_ONLY.includes(p)).sort(), Object.keys(EXPECTED).sort());
  });
  for (const [point, where] of Object.entries(EXPECTED)) {
    it(`${point}: ${where}; never running twice; no image, record or label left where the guest is not`, async (t) => {
      const [h1, h2] = makeHosts(t, 2);
      assert.ok(h1 && h2);
      await h1.serve();
      const destCrash = point.startsWith('migrate-in:');
      await h2.serve(destCrash ? { SVIRT_TEST_CRASH_AT: point } : {});
      const dir = tempDir(t, 'svirt-copyfault-');
      const src = imagePath(dir, h1, 'qcow2');
      const dst = imagePath(dir, h2, 'qcow2');
      makeSourceImage(src, 'qcow2');
      const x1 = copyXml(undefined, dir, src, 'qcow2', h1);
      const x2 = copyXml(undefined, dir, dst, 'qcow2', h2);
      await h1.svirtOk(['define', x1]);
      await h1.svirtOk(['start', 'mig']);
      const before = await assertRunsOn(h1, src);
      const r = await h1.svirt(
        ['migrate', '--live', '--copy-storage-all', '--xml', x2, 'mig', h2.uri],
        destCrash ? {} : { SVIRT_TEST_CRASH_AT: point },
      );
      assert.notEqual(r.code, 0, `the migration did not complete normally: ${r.stdout}`);
      if (destCrash) assert.ok(await waitFor(() => !h2.serving(), 5000, 50), 'the destination serve died at its crash point');
      await h2.serve(); // a serve again, without the crash point
      if (where === 'source' || where === 'held') {
        const ok = await reconcileBoth(h1, h2, () => traces(h1).running === 1 && clean(traces(h2)));
        assert.ok(ok, `the source keeps the guest, the destination nothing: ${JSON.stringify([traces(h1), traces(h2)])}`);
        assert.ok(!existsSync(dst), 'the image the destination created is gone');
        assert.equal(qemuPid(h1), before.pid, 'the same QEMU');
        if (where === 'held') {
          assert.match(await vcpuStatus(h1), /paused|postmigrate/, 'the source holds the guest paused: it cannot know');
          await h1.svirtOk(['resume', 'mig']);
        }
        await assertRunsOn(h1, src);
        assert.ok(holds(src, 'qcow2', 0x5a, '0', '1M'));
        await h1.svirtOk(['destroy', 'mig']);
      } else if (where === 'destination') {
        const ok = await reconcileBoth(h1, h2, () => traces(h2).running === 1 && clean(traces(h1)));
        assert.ok(ok, `the destination runs the guest, the source keeps nothing: ${JSON.stringify([traces(h1), traces(h2)])}`);
        await assertRunsOn(h2, dst);
        assert.ok(holds(dst, 'qcow2', 0x5a, '0', '1M'), 'the copy is whole');
        await h2.svirtOk(['destroy', 'mig']);
      } else {
        const ok = await reconcileBoth(h1, h2, () => traces(h1).running === 1 && traces(h2).running === 1);
        assert.ok(ok, JSON.stringify([traces(h1), traces(h2)]));
        await assertRunsOn(h2, dst);
        assert.match(await vcpuStatus(h1), /paused|postmigrate/, 'the source holds its copy paused: never running twice');
        await h1.svirtOk(['destroy', 'mig']); // as its warning says: the destination runs it
        assert.ok(clean(traces(h1)));
        await h2.svirtOk(['destroy', 'mig']);
      }
      assert.deepEqual(ownerOf(src), ORIGINAL, "the source's image has its original owner");
    });
  }
});
