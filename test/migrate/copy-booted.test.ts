import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers.js';
import { haveVirsh } from '../remote/support.js';
import { guestImage, guestImageSkip } from '../support/guest-image.js';
import { hostsSkip, makeHosts, type TestHost } from '../support/hosts.js';
import { SerialConsole } from '../support/netns.js';
import { ORIGINAL, assertRunsOn, consoleOf, lastTick, startCounter, TICK_LINE, traces } from './support.js';
import { copyXml, holds, imagePath, makeSourceImage, ownerOf, virsh } from './copy-support.js';

describe(
  '--copy-storage-all of a booted guest (acceptance, issue 16)',
  { skip: hostsSkip() || guestImageSkip() || (haveVirsh() ? false : 'virsh is not installed') },
  () => {
    it('there and back twice (svirt migrate, then virsh plain and --p2p) to a host that cannot reach the source image: what the guest wrote is there, its counter runs on, owners right', async (t) => {
      const image = guestImage();
      assert.ok(!('skip' in image));
      const [h1, h2] = makeHosts(t, 2);
      assert.ok(h1 && h2);
      const dir = tempDir(t, 'svirt-copyboot-');
      const disks = new Map<TestHost, string>([
        [h1, imagePath(dir, h1, 'qcow2')],
        [h2, imagePath(dir, h2, 'qcow2')],
      ]);
      const diskOf = (h: TestHost): string => disks.get(h) as string;
      // Each host's serve, and every QEMU it starts, sees the other host's image directory empty.
      await Promise.all([h1.serve({}, { hide: [dirname(diskOf(h2))] }), h2.serve({}, { hide: [dirname(diskOf(h1))] })]);
      makeSourceImage(diskOf(h1), 'qcow2');
      const xml = new Map<TestHost, string>([
        [h1, copyXml(image, dir, diskOf(h1), 'qcow2', h1)],
        [h2, copyXml(image, dir, diskOf(h2), 'qcow2', h2)],
      ]);
      await h1.svirtOk(['define', xml.get(h1) as string]);
      await h1.svirtOk(['start', 'mig']);
      let con = await SerialConsole.open(consoleOf(dir, h1));
      t.after(() => con.close());
      await startCounter(con);
      /** The guest writes a mark of its own to its disk (2 MiB in, past the host-written pattern). */
      const writeMark = async (n: number): Promise<void> => {
        con.send(
          `printf 'MK%s' $((${n}+1000)) | dd of=/dev/vda bs=512 seek=4096 conv=fsync 2>/dev/null; echo "wrote-$((${n}+2000))"`,
        );
        assert.ok(
          await con.waitFor(new RegExp(`wrote-${n + 2000}`), 15_000),
          `the guest wrote mark ${n}: ${con.text.slice(-300)}`,
        );
      };
      await writeMark(0);
      let seen = lastTick(con.text);
      let here: TestHost = h1;
      const hops: readonly ((from: TestHost, to: TestHost) => Promise<{ code: number; out: string }>)[] = [
        async (from, to) => {
          const r = await from.svirt([
            'migrate',
            '--live',
            '--copy-storage-all',
            '--verbose',
            '--xml',
            xml.get(to) as string,
            'mig',
            to.uri,
          ]);
          return { code: r.code, out: r.stderr };
        },
        async (from, to) => {
          const r = await from.svirt(['migrate', '--live', '--copy-storage-all', '--xml', xml.get(to) as string, 'mig', to.uri]);
          return { code: r.code, out: r.stderr };
        },
        async (from, to) =>
          virsh(from.uri, ['migrate', '--live', '--copy-storage-all', '--xml', xml.get(to) as string, 'mig', to.uri]),
        async (from, to) =>
          virsh(from.uri, ['migrate', '--live', '--p2p', '--copy-storage-all', '--xml', xml.get(to) as string, 'mig', to.uri]),
      ];
      const times: number[] = [];
      for (const [k, hop] of hops.entries()) {
        const there: TestHost = here === h1 ? h2 : h1;
        const started = Date.now();
        const r = await hop(here, there);
        times.push(Date.now() - started);
        assert.equal(r.code, 0, `hop ${k + 1} ${here.name} -> ${there.name}: ${r.out}`);
        seen = Math.max(seen, lastTick(con.text));
        con.close();
        con = await SerialConsole.open(consoleOf(dir, there));
        const next = await con.waitFor(TICK_LINE, 30_000);
        assert.ok(next, `hop ${k + 1}: the counter runs on ${there.name}: ${con.text.slice(-200)}`);
        const n = lastTick(con.text);
        assert.ok(n > seen && n - seen < 200, `hop ${k + 1}: tick ${n} on ${there.name} follows tick ${seen} (no reset)`);
        seen = n;
        // What the guest wrote before the hop is on the disk it runs from now.
        con.send(`echo "got-$(dd if=/dev/vda bs=512 skip=4096 count=1 2>/dev/null | head -c 6)"`);
        assert.ok(
          await con.waitFor(new RegExp(`got-MK${k + 1000}`), 15_000),
          `hop ${k + 1}: mark ${k} is there: ${con.text.slice(-300)}`,
        );
        await writeMark(k + 1);
        const placed = await assertRunsOn(there, diskOf(there));
        assert.deepEqual(
          readdirSync(`/proc/${placed.pid}/root${dirname(diskOf(here))}`),
          [],
          `hop ${k + 1}: QEMU on ${there.name} cannot reach ${here.name}'s storage`,
        );
        assert.ok(
          holds(diskOf(there), 'qcow2', 0x5a, '0', '1M') && holds(diskOf(there), 'qcow2', 0xa5, '31M', '1M'),
          `hop ${k + 1}: the host-written content was copied`,
        );
        assert.deepEqual(
          traces(here),
          { running: 0, reserved: 0, remembered: 0 },
          `hop ${k + 1}: ${here.name} kept nothing of the guest`,
        );
        assert.deepEqual(
          ownerOf(diskOf(here)),
          here === h1 ? ORIGINAL : { uid: 0, gid: 0, mode: 0o600 },
          `hop ${k + 1}: ${here.name}'s image is back to its owner before the guest`,
        );
        here = there;
      }
      t.diagnostic(`hop times (ms): ${times.join(' ')}`);
      await here.svirtOk(['destroy', 'mig']);
      assert.deepEqual(ownerOf(diskOf(h1)), ORIGINAL);
    });
  },
);
