/**
 * Network autostart is idempotent and serialized: two svirt processes that need one autostart
 * network at the same moment (two guest starts) end with one bridge, one nft table and one
 * dnsmasq, and both guests on it; two `net-start`s at once give one start and one "already
 * active". A start killed half way (after its bridge, or right after its claim) is finished by
 * the next command that needs the network: what the dead start made is removed first. All of
 * it inside a network namespace the test makes.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { countRows, qemuAsRootSkip, scratch, writeDomain, SVIRT_BIN, type CliResult } from '../helpers.js';
import { dhcpNetworkXml, nicGuestXml } from '../support/network-xml.js';
import { netns, netnsSkip, nsBridges, nsDnsmasqs, nsNftTables, svirtIn, svirtInOk } from '../support/netns.js';

const skip = qemuAsRootSkip() || netnsSkip();
const S = ['--security-driver', 'dac,landlock'];
const BRIDGE = 'svbr-race';

const NETWORK = dhcpNetworkXml('race', BRIDGE, 78);
const guestXml = (name: string): string => nicGuestXml(name, 'race');

/** The CLI in the namespace with extra environment (a crash point). */
function svirtInEnv(ns: string, dir: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, SVIRT_BIN, '--state-dir', dir, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, sig) => resolve({ code: code ?? (sig ? 128 : 1), stdout: '', stderr }));
  });
}

/** One network up: one bridge, one table, one dnsmasq, net-info says active. */
async function assertOneNetwork(ns: string, dir: string, when: string): Promise<void> {
  assert.deepEqual([...nsBridges(ns).keys()], [BRIDGE], `${when}: one bridge`);
  assert.equal(nsNftTables(ns, 'svirt-race').length, 1, `${when}: one nft table`);
  assert.equal(nsDnsmasqs(ns), 1, `${when}: one dnsmasq`);
  assert.match(await svirtInOk(ns, dir, ['net-info', 'race']), /^Active:\s+yes$/m, when);
  assert.equal(countRows(dir, 'network_starts'), 0, `${when}: no start claim left`);
}

async function assertNoNetwork(ns: string, when: string): Promise<void> {
  // dnsmasq ends on SIGTERM within its stop's bounded wait; the bridge and table go at once.
  assert.deepEqual([...nsBridges(ns).keys()], [], `${when}: no bridge`);
  assert.deepEqual(nsNftTables(ns, 'svirt-race'), [], `${when}: no nft table`);
  assert.equal(nsDnsmasqs(ns), 0, `${when}: no dnsmasq`);
}

/** A scratch state dir and a namespace with the network `race` defined and marked autostart. */
async function autostartNetwork(t: TestContext): Promise<{ dir: string; ns: string }> {
  const dir = scratch(t);
  const ns = netns(t);
  const netFile = join(dir, 'race.xml');
  writeFileSync(netFile, NETWORK);
  await svirtInOk(ns, dir, ['net-define', netFile]);
  await svirtInOk(ns, dir, ['net-autostart', 'race']);
  return { dir, ns };
}

describe(
  'network autostart: serialized, idempotent, repaired after a crash (namespace, real bridge/nft/dnsmasq)',
  { skip },
  () => {
    it(
      'two guest starts at once autostart one network; two net-starts at once give one start',
      { timeout: 300_000 },
      async (t) => {
        const { dir, ns } = await autostartNetwork(t);
        for (const g of ['ga', 'gb']) await svirtInOk(ns, dir, [...S, 'define', writeDomain(dir, g, guestXml(g))]);

        for (let round = 1; round <= 3; round++) {
          const results = await Promise.all(['ga', 'gb'].map((g) => svirtIn(ns, dir, [...S, 'start', g, '--paused'])));
          for (const r of results) assert.equal(r.code, 0, `round ${round}: ${r.stderr}`);
          await assertOneNetwork(ns, dir, `round ${round}`);
          for (const g of ['ga', 'gb'])
            assert.match(await svirtInOk(ns, dir, ['domiflist', g]), new RegExp(`network\\s+race\\s+virtio`), `${g} is on it`);
          for (const g of ['ga', 'gb']) await svirtInOk(ns, dir, [...S, 'destroy', g]);
          await svirtInOk(ns, dir, ['net-destroy', 'race']);
          await assertNoNetwork(ns, `after round ${round}`);
        }

        const starts = await Promise.all([1, 2].map(() => svirtIn(ns, dir, ['net-start', 'race'])));
        assert.deepEqual(starts.map((r) => r.code).sort(), [0, 1], starts.map((r) => r.stderr).join(''));
        assert.match(starts.find((r) => r.code !== 0)?.stderr ?? '', /^error: .*network 'race' is already active$/m);
        await assertOneNetwork(ns, dir, 'after two net-starts');
        await svirtInOk(ns, dir, ['net-destroy', 'race']);
        await assertNoNetwork(ns, 'at the end');
      },
    );

    for (const point of ['net-start:bridge', 'net-start:claimed'])
      it(`a start killed at ${point} is finished by the next command that needs the network`, { timeout: 120_000 }, async (t) => {
        const { dir, ns } = await autostartNetwork(t);
        await svirtInOk(ns, dir, [...S, 'define', writeDomain(dir, 'ga', guestXml('ga'))]);

        const crashed = await svirtInEnv(ns, dir, ['net-start', 'race'], { SVIRT_TEST_CRASH_AT: point });
        assert.equal(crashed.code, 128, `killed at ${point}: ${crashed.stderr}`);
        const left = nsBridges(ns).get(BRIDGE);
        if (point === 'net-start:bridge') assert.ok(left, 'the dead start left its bridge');
        assert.equal(countRows(dir, 'network_starts'), 1, "the dead start's claim is on record");
        assert.doesNotMatch(
          await svirtInOk(ns, dir, ['net-info', 'race']),
          /^Active:\s+yes$/m,
          'a half-made network is not active',
        );

        await svirtInOk(ns, dir, [...S, 'start', 'ga', '--paused']);
        await assertOneNetwork(ns, dir, `after the crash at ${point}`);
        if (left !== undefined) assert.notEqual(nsBridges(ns).get(BRIDGE), left, 'the left bridge was removed and made anew');
        await svirtInOk(ns, dir, [...S, 'destroy', 'ga']);
        await svirtInOk(ns, dir, ['net-destroy', 'race']);
        await assertNoNetwork(ns, 'at the end');
      });
  },
);
