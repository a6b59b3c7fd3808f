import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { describe, it } from 'node:test';
import { MIGRATION_CRASH_POINTS } from '../../src/lifecycle/crash-points.js';
import { tempDir, waitFor } from '../helpers.js';
import { hostsSkip, makeHosts, type TestHost } from '../support/hosts.js';
import { ORIGINAL, assertRunsOn, qemuFdsOn, reservations, makeDisk, traces, writeXmlFiles } from './support.js';

/** Where the guest must be once both hosts have reconciled: before the commit point on the source, after it on the destination. */
const EXPECTED: Readonly<Record<string, 'source' | 'destination'>> = {
  'migrate-out:journaled': 'source',
  'migrate-out:streaming': 'source',
  'migrate-out:migrated': 'source',
  'migrate-out:confirmed': 'destination',
  'migrate-out:killed': 'destination',
  'migrate-in:prepared': 'source',
  'migrate-in:loaded': 'source',
  'migrate-in:journaled': 'source',
  'migrate-in:took-image': 'destination',
  'migrate-in:attached': 'destination',
  'migrate-in:resumed': 'destination',
};

/** Reconciles both hosts until one runs the guest and the other has no trace of it (bounded). */
async function settle(a: TestHost, b: TestHost): Promise<TestHost | undefined> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    await a.svirt(['reconcile', '--quiet']);
    await b.svirt(['reconcile', '--quiet']);
    const [ta, tb] = [traces(a), traces(b)];
    const clean = (t: typeof ta): boolean => t.running === 0 && t.reserved === 0 && t.remembered === 0;
    const winner = ta.running === 1 && clean(tb) ? a : tb.running === 1 && clean(ta) ? b : undefined;
    if (winner) return winner;
    await new Promise((r) => setTimeout(r, 250));
  }
  return undefined;
}

describe('migration faults: a crash at every step (issue 16)', { skip: hostsSkip() }, () => {
  it('covers every step of a shared-storage migration (MIGRATION_CRASH_POINTS)', () => {
    // --copy-storage-all's own steps: test/migrate/copy-faults.test.ts.
    const copyOnly = ['migrate-out:mirrored', 'migrate-in:exported', 'migrate-in:unexported'];
    assert.deepEqual([...MIGRATION_CRASH_POINTS].filter((p) => !copyOnly.includes(p)).sort(), Object.keys(EXPECTED).sort());
  });
  for (const [point, where] of Object.entries(EXPECTED)) {
    it(`${point}: the guest runs once, on the ${where}; the other host keeps nothing; the image is the runner's`, async (t) => {
      const [h1, h2] = makeHosts(t, 2);
      assert.ok(h1 && h2);
      await h1.serve();
      const destCrash = point.startsWith('migrate-in:');
      await h2.serve(destCrash ? { SVIRT_TEST_CRASH_AT: point } : {});
      const dir = tempDir(t, 'svirt-fault-');
      const disk = makeDisk(dir);
      const xml = writeXmlFiles(undefined, dir, disk, [h1, h2]);
      await h1.svirtOk(['define', xml.get(h1) as string]);
      await h1.svirtOk(['start', 'mig']);
      const before = await assertRunsOn(h1, disk);
      const r = await h1.svirt(
        ['migrate', '--live', '--xml', xml.get(h2) as string, 'mig', h2.uri],
        destCrash ? {} : { SVIRT_TEST_CRASH_AT: point },
      );
      assert.notEqual(r.code, 0, `the migration did not complete normally: ${r.stdout}`);
      if (destCrash) assert.ok(await waitFor(() => !h2.serving(), 5000, 50), 'the destination serve died at its crash point');
      if (point === 'migrate-in:loaded' || point === 'migrate-in:journaled') {
        // The whole state arrived, the image is still the source's: the destination's QEMU holds no fd of it.
        assert.equal(qemuFdsOn(h2, disk), 0, "the destination's QEMU has no fd of the image before it is its own");
      }
      if (point === 'migrate-in:attached')
        assert.ok(qemuFdsOn(h2, disk) > 0, "the destination's QEMU got the image once it owned it");
      await h2.serve(); // a serve again, without the crash point
      const winner = await settle(h1, h2);
      assert.ok(
        winner,
        `exactly one host runs the guest and the other has no trace: ${JSON.stringify([traces(h1), traces(h2), reservations(h1), reservations(h2)])}`,
      );
      assert.equal(winner, where === 'source' ? h1 : h2, `the guest runs on the ${where}`);
      const now = await assertRunsOn(winner, disk);
      if (winner === h1) assert.equal(now.pid, before.pid, 'the source guest ran on: the same QEMU');
      await winner.svirtOk(['destroy', 'mig']);
      const st = statSync(disk);
      assert.deepEqual({ uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 }, ORIGINAL, 'the original owner is back');
    });
  }
});
