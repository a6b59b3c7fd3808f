/**
 * Issue 16 part 4: docs/fleet.md run as written. Three svirt hosts (network namespaces on one
 * LAN, a serve each, dac,landlock), four booted guests of the guest image on storage they
 * share, and docs/fleet/fleet.py (python-libvirt, nothing of svirt's) placing them, draining
 * host1 by live migration and bringing it back. After each step every host's own store,
 * processes and files are checked against where the script's rule puts each guest.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir, waitFor } from '../helpers.js';
import { guestImage, guestImageSkip, type GuestImage } from '../support/guest-image.js';
import { hostsSkip, makeHosts, type TestHost } from '../support/hosts.js';
import { isServeOrWorker, nsProcesses } from '../support/netns.js';
import {
  ORIGINAL,
  anyTraces,
  assertAbsent,
  assertRunsOn,
  fleet,
  guestUptime,
  makeGuest,
  pythonLibvirtSkip,
  qemusOf,
  type FleetGuest,
} from './fleet-support.js';

const BOOT_MS = 180_000;

/** The processes in h's namespace other than its serve and serve's warm worker, once the last guest's monitor had 20 s to finish its exit hook. */
async function onlyServe(h: TestHost): Promise<string[]> {
  const others = (): string[] =>
    nsProcesses(h.ns)
      .filter((p) => !isServeOrWorker(p.args))
      .map((p) => `${p.pid} ${p.args}`);
  await waitFor(() => others().length === 0, 20_000, 200);
  return others();
}

describe('a fleet of three svirt hosts driven by python-libvirt (docs/fleet.md)', () => {
  it(
    'place four guests, drain host1 by live migration, bring it back: each guest runs once, where the rule says, with its own uid and image',
    { skip: hostsSkip() || pythonLibvirtSkip() || guestImageSkip(), timeout: 20 * 60_000 },
    async (t) => {
      const image = guestImage() as GuestImage;
      const hosts = makeHosts(t, 3);
      await Promise.all(hosts.map((h) => h.serve()));
      const [h1, h2, h3] = hosts as [TestHost, TestHost, TestHost];
      const dir = tempDir(t, 'svirt-fleet-');
      const guests = ['g1', 'g2', 'g3', 'g4'].map((n) => makeGuest(image, dir, n, randomUUID()));
      const byName = new Map(guests.map((g) => [g.name, g]));
      const inventory = join(dir, 'hosts');
      writeFileSync(inventory, hosts.map((h) => `${h.name} ${h.uri}\n`).join(''));

      /** Runs fleet.py; it must succeed. */
      const run = async (args: readonly string[]): Promise<string> => {
        const r = await fleet(inventory, args);
        assert.equal(r.code, 0, `fleet.py ${args.join(' ')} (${r.code}):\n${r.stdout}${r.stderr}`);
        t.diagnostic(`fleet.py ${args.join(' ')}: ${r.stdout.trim().replace(/\n/g, '; ')}`);
        return r.stdout;
      };
      /** Every guest runs where `want` says and nowhere else; fleet.py's status agrees. */
      const check = async (want: Record<string, readonly string[]>, drained: readonly string[] = []): Promise<void> => {
        for (const h of hosts) {
          for (const g of guests) {
            if (want[h.name]?.includes(g.name)) await assertRunsOn(h, g);
            else await assertAbsent(h, g);
          }
        }
        const status = JSON.parse(await run(['status', '--json'])) as Record<string, { drained: boolean; running: string[] }>;
        for (const h of hosts) {
          assert.deepEqual(status[h.name], { drained: drained.includes(h.name), running: want[h.name] ?? [] });
        }
      };
      const uptimes = new Map<FleetGuest, number>();
      /** Each guest's shell answers on its host's console, its uptime never going back (live migration, not a reboot). */
      const alive = async (want: Record<string, readonly string[]>, ms: number): Promise<void> => {
        for (const h of hosts) {
          for (const name of want[h.name] ?? []) {
            const g = byName.get(name) as FleetGuest;
            const up = await guestUptime(h, name, ms);
            assert.ok(up !== undefined, `${name}'s shell answers on ${h.name}'s console`);
            const before = uptimes.get(g);
            if (before !== undefined) assert.ok(up >= before, `${name}'s uptime ${up} s follows ${before} s: the same boot`);
            uptimes.set(g, up);
          }
        }
      };

      // 1. Place: the least busy host each time, the first on a tie.
      const placed = await run(['place', ...guests.map((g) => g.xml)]);
      assert.match(placed, /place g1 on host1\nplace g2 on host2\nplace g3 on host3\nplace g4 on host1\n/);
      const start = { host1: ['g1', 'g4'], host2: ['g2'], host3: ['g3'] };
      await check(start);
      await alive(start, BOOT_MS);

      // 2. Drain host1: its guests go live to the least busy of the others.
      const drainedOut = await run(['drain', 'host1']);
      assert.match(drainedOut, /migrate g1: host1 -> host2\nmigrate g4: host1 -> host3\n/);
      const drained = { host1: [], host2: ['g1', 'g2'], host3: ['g3', 'g4'] };
      await check(drained, ['host1']);
      assert.deepEqual(anyTraces(h1), { running: 0, reserved: 0, remembered: 0 }, 'the drained host holds nothing');
      assert.equal((await h1.svirtOk(['list', '--all', '--name'])).trim(), '', 'the drained host has no definition left');
      assert.deepEqual(await onlyServe(h1), [], 'nothing but its serve runs on the drained host');
      await alive(drained, 60_000);

      // 3. Bring host1 back: the rebalance moves one guest home.
      const back = await run(['undrain', 'host1']);
      assert.match(back, /^migrate g1: host2 -> host1\n$/);
      const end = { host1: ['g1'], host2: ['g2'], host3: ['g3', 'g4'] };
      await check(end);
      await alive(end, 60_000);

      // 4. Nothing leaks: once every guest is destroyed and undefined where it runs, each
      // image has its first owner back and no host keeps a record, reservation or QEMU.
      for (const [host, names] of [
        [h1, end.host1],
        [h2, end.host2],
        [h3, end.host3],
      ] as const) {
        for (const n of names) {
          await host.svirtOk(['destroy', n]);
          await host.svirtOk(['undefine', n]);
        }
      }
      for (const g of guests) {
        const st = statSync(g.disk);
        assert.deepEqual({ uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 }, ORIGINAL, `${g.name}'s image has its owner back`);
        assert.deepEqual(qemusOf(g.uuid), [], `no QEMU of ${g.name} is left`);
      }
      for (const h of hosts) {
        assert.deepEqual(anyTraces(h), { running: 0, reserved: 0, remembered: 0 }, `${h.name} holds nothing`);
        assert.deepEqual(await onlyServe(h), [], `nothing but its serve runs on ${h.name}`);
      }
    },
  );
});
