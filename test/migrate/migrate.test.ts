import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers.js';
import { hostsSkip, makeHosts } from '../support/hosts.js';
import { ORIGINAL, assertRunsOn, makeDisk, traces, writeXmlFiles } from './support.js';

// The relay: QEMU's end of the stream is a socketpair svirt relays to the TCP connection, as
// under SELinux (src/lifecycle/migrate/stream-end.ts); forced here, where no socket label exists.
const CASES: readonly [string, Record<string, string>][] = [
  ['the TCP connection handed to QEMU', {}],
  ['through svirt relay', { SVIRT_TEST_MIGRATE_RELAY: '1' }],
];

describe('svirt migrate (shared storage, dac,landlock)', { skip: hostsSkip() }, () => {
  for (const [how, env] of CASES)
    it(`moves a running guest to another host and back (${how}): new uid there, the image handed over, nothing left behind`, async (t) => {
      const [h1, h2] = makeHosts(t, 2);
      assert.ok(h1 && h2);
      await h1.serve(env);
      await h2.serve(env);
      const dir = tempDir(t, 'svirt-mig-');
      const disk = makeDisk(dir);
      const xml = writeXmlFiles(undefined, dir, disk, [h1, h2]);
      await h1.svirtOk(['define', xml.get(h1) as string]);
      await h1.svirtOk(['start', 'mig']);
      const before = await assertRunsOn(h1, disk);
      const r = await h1.svirt(['migrate', '--live', '--verbose', '--xml', xml.get(h2) as string, 'mig', h2.uri], env);
      assert.equal(r.code, 0, r.stderr);
      const after = await assertRunsOn(h2, disk);
      assert.notEqual(after.uid, before.uid);
      assert.deepEqual(
        traces(h1),
        { running: 0, reserved: 0, remembered: 0 },
        'the source keeps no record, reservation or remembered label',
      );
      const back = await h2.svirt(['migrate', '--live', '--xml', xml.get(h1) as string, 'mig', h1.uri], env);
      assert.equal(back.code, 0, back.stderr);
      await assertRunsOn(h1, disk);
      assert.deepEqual(traces(h2), { running: 0, reserved: 0, remembered: 0 });
      await h1.svirtOk(['destroy', 'mig']);
      const st = statSync(disk);
      assert.deepEqual(
        { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 },
        ORIGINAL,
        'the original owner followed the guest and came back',
      );
    });
});
