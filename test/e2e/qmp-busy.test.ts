/**
 * QEMU serves one monitor client at a time and listens with a backlog of one: while a client
 * holds the monitor and another waits, a third connect fails with EAGAIN. QmpClient.connect
 * retries that until its timeout, so verbs that reach one guest's monitor at once (two CLI
 * verbs, serve and a verb) wait their turn instead of failing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { QmpClient } from '../../src/qemu/qmp-client.js';
import { domainXml, makeImage, qemuAsRootSkip, readRunning, scratch, svirtOk, writeDomain } from '../helpers.js';

const STACK = ['--security-driver', 'dac,landlock'];

describe('a busy QMP monitor', { skip: qemuAsRootSkip() }, () => {
  it('four clients while one holds the monitor: each waits its turn and runs its command', async (t) => {
    const dir = scratch(t);
    const img = makeImage(join(dir, 'q.img'));
    await svirtOk(dir, [...STACK, 'define', writeDomain(dir, 'q', domainXml('q', [{ path: img, dev: 'vda' }]))]);
    await svirtOk(dir, [...STACK, 'start', 'q', '--paused']);
    const uuid = readRunning(dir)[0]?.uuid;
    const db = new Database(join(dir, 'svirt.db'), { readonly: true });
    const qmpPath = (db.prepare('SELECT qmp_path FROM running WHERE uuid = ?').get(uuid) as { qmp_path: string }).qmp_path;
    db.close();
    const holder = await QmpClient.connect(qmpPath);
    // The others connect while the holder has the monitor: one waits in the backlog, the rest get EAGAIN.
    const others = [1, 2, 3, 4].map(async () => {
      const q = await QmpClient.connect(qmpPath, 10_000);
      try {
        return (await q.execute('query-status')) as { status: string };
      } finally {
        q.close();
      }
    });
    await new Promise((r) => setTimeout(r, 300));
    holder.close();
    const answers = await Promise.all(others);
    assert.deepEqual(
      answers.map((a) => a.status),
      ['prelaunch', 'prelaunch', 'prelaunch', 'prelaunch'], // -S: QEMU waits before its first run,
    );
  });
});
