/**
 * A client that drives libvirt's five steps itself (as plain `virsh migrate` does) and goes
 * after Perform, or stays and never sends Confirm: the source's serve gives the migration up
 * (a timer, or the connection's end), the images decide (none taken: the source runs on, with
 * the same QEMU and its labels), and the destination's prepared guest goes with its client.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { tempDir } from '../helpers.js';
import { hostsSkip, makeHosts, type TestHost } from '../support/hosts.js';
import { Steps } from './steps.js';
import { assertRunsOn, makeDisk, traces, vcpuStatus, writeXmlFiles } from './support.js';

/** Polls an async condition, bounded in time. */
async function until(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond().catch(() => false)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** The source runs the guest again, in the same QEMU, with the image still its own; the destination holds nothing. */
async function sourceRunsOn(src: TestHost, dst: TestHost, disk: string, pid: number): Promise<void> {
  assert.ok(
    await until(async () => (await vcpuStatus(src)) === 'running' && traces(dst).running === 0, 20_000),
    `the source resumed and the destination let go: ${JSON.stringify(traces(dst))}`,
  );
  const now = await assertRunsOn(src, disk);
  assert.equal(now.pid, pid, 'the same QEMU runs on');
  assert.deepEqual(traces(dst), { running: 0, reserved: 0, remembered: 0 }, `${dst.name} holds nothing`);
}

/** Two hosts with serve running (the source's Confirm timer at 1.5 s), a guest 'mig' running on the first, Begin/Prepare/Perform done. */
async function performed(t: TestContext): Promise<{ h1: TestHost; h2: TestHost; disk: string; pid: number; steps: Steps }> {
  const [h1, h2] = makeHosts(t, 2);
  assert.ok(h1 && h2);
  // The grace left to a Finish that may still run is the timer's, here shortened (2 minutes at most otherwise).
  const [s1, s2] = await Promise.all([h1.serve({ SVIRT_TEST_MIGRATE_CONFIRM_MS: '1500' }), h2.serve()]);
  const dir = tempDir(t, 'svirt-vanish-');
  const disk = makeDisk(dir);
  const xml = writeXmlFiles(undefined, dir, disk, [h1, h2]);
  await h1.svirtOk(['define', xml.get(h1) as string]);
  await h1.svirtOk(['start', 'mig']);
  const before = await assertRunsOn(h1, disk);
  const steps = await Steps.open(s1, s2);
  try {
    await steps.begin();
    await steps.prepare(readFileSync(xml.get(h2) as string, 'utf8'));
    await steps.perform();
  } catch (err) {
    steps.close();
    throw err;
  }
  return { h1, h2, disk, pid: before.pid, steps };
}

describe('migration: a Perform whose client never confirms (issue 16)', { skip: hostsSkip() }, () => {
  it('the client goes after Perform: the source runs on, the destination is clean', async (t) => {
    const { h1, h2, disk, pid, steps } = await performed(t);
    try {
      assert.equal(await vcpuStatus(h1), 'postmigrate', 'the stream completed: the source waits for its Confirm');
    } finally {
      steps.close();
    }
    await sourceRunsOn(h1, h2, disk, pid);
  });

  it('the client stays but sends no Confirm: the timer gives the migration up', async (t) => {
    const { h1, h2, disk, pid, steps } = await performed(t);
    try {
      const t0 = Date.now();
      assert.ok(await until(async () => (await vcpuStatus(h1)) === 'running', 20_000), 'the source resumed');
      t.diagnostic(`resumed ${Date.now() - t0} ms after Perform (timer 1500 ms)`);
      // The destination's client is still there, its guest prepared: a cancelled Finish ends it ("cancelled" is an error reply).
      await assert.rejects(steps.finish(true), /cancelled/);
      await sourceRunsOn(h1, h2, disk, pid);
      // A Confirm now comes too late and changes nothing.
      await assert.rejects(steps.confirm(false), /not being migrated/);
      await sourceRunsOn(h1, h2, disk, pid);
    } finally {
      steps.close();
    }
  });
});
