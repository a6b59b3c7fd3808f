import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers.js';
import { guestImage, guestImageSkip } from '../support/guest-image.js';
import { hostsSkip, makeHosts, type TestHost } from '../support/hosts.js';
import { SerialConsole } from '../support/netns.js';
import {
  ORIGINAL,
  assertRunsOn,
  consoleOf,
  lastTick,
  makeDisk,
  startCounter,
  TICK_LINE,
  traces,
  writeXmlFiles,
} from './support.js';

const HOPS = 10;

describe('live migration of a booted guest (acceptance, issue 16)', { skip: hostsSkip() || guestImageSkip() }, () => {
  it(`${HOPS} hops back and forth: the guest's counter never resets; uid, labels and image right on both sides after each`, async (t) => {
    const image = guestImage();
    assert.ok(!('skip' in image));
    const [h1, h2] = makeHosts(t, 2);
    assert.ok(h1 && h2);
    await Promise.all([h1.serve(), h2.serve()]);
    const dir = tempDir(t, 'svirt-hops-');
    const disk = makeDisk(dir);
    const xml = writeXmlFiles(image, dir, disk, [h1, h2]);
    await h1.svirtOk(['define', xml.get(h1) as string]);
    await h1.svirtOk(['start', 'mig']);
    let con = await SerialConsole.open(consoleOf(dir, h1));
    t.after(() => con.close());
    await startCounter(con);
    let seen = lastTick(con.text);
    let here: TestHost = h1;
    let placed = await assertRunsOn(h1, disk);
    const times: number[] = [];
    const downtimes: number[] = [];
    for (let hop = 1; hop <= HOPS; hop++) {
      const there: TestHost = here === h1 ? h2 : h1;
      const started = Date.now();
      const r = await here.svirt(['--json', 'migrate', '--live', '--xml', xml.get(there) as string, 'mig', there.uri]);
      times.push(Date.now() - started);
      assert.equal(r.code, 0, `hop ${hop} ${here.name} -> ${there.name}: ${r.stderr}`);
      downtimes.push((JSON.parse(r.stdout) as { downtimeMs: number }).downtimeMs);
      seen = Math.max(seen, lastTick(con.text));
      con.close();
      con = await SerialConsole.open(consoleOf(dir, there));
      // The counter goes on from where it was: the next tick is past the last one seen, never a restart.
      const next = await con.waitFor(TICK_LINE, 30_000);
      if (!next) assert.fail(`hop ${hop}: the counter runs on ${there.name}: ${await silentGuest(there, con)}`);
      const n = lastTick(con.text);
      assert.ok(n > seen, `hop ${hop}: tick ${n} on ${there.name} follows tick ${seen} (no reset)`);
      assert.ok(n - seen < 200, `hop ${hop}: tick ${n} is close to ${seen}: the same run, not a new one`);
      seen = n;
      const now = await assertRunsOn(there, disk);
      assert.notEqual(now.pid, placed.pid);
      assert.deepEqual(
        traces(here),
        { running: 0, reserved: 0, remembered: 0 },
        `hop ${hop}: ${here.name} kept nothing of the guest`,
      );
      placed = now;
      here = there;
    }
    t.diagnostic(`hop times (ms): ${times.join(' ')}; guest paused (QEMU's downtime, ms): ${downtimes.join(' ')}`);
    await here.svirtOk(['destroy', 'mig']);
    const st = statSync(disk);
    assert.deepEqual(
      { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 },
      ORIGINAL,
      'the original owner came back after the last host',
    );
  });
});

/**
 * Why a migrated guest's console stayed silent (seen once in CI, hop 7, not reproduced since):
 * the state and QEMU's CPU time svirt reports on the destination, before and after asking the
 * guest's shell to answer on the same console. That tells a guest that does not run from one
 * whose output is lost.
 */
async function silentGuest(there: TestHost, con: SerialConsole): Promise<string> {
  const info = async (): Promise<string> => {
    const r = await there.svirt(['dominfo', 'mig']);
    const keep = r.stdout.split('\n').filter((l) => /^(State|CPU time):/.test(l));
    return keep.map((l) => l.replace(/\s+/g, ' ')).join(', ') || r.stderr.trim();
  };
  const before = await info();
  con.send('echo probe-$((6*7))');
  const answered = (await con.waitFor(/probe-42/, 10_000)) !== undefined;
  return `before a probe: ${before}; the shell answers: ${answered}; after: ${await info()}; console: ${JSON.stringify(con.text.slice(-200))}`;
}
