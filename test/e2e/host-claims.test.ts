/**
 * Two state dirs on one host never give two running guests one identity (src/store/host-claims.ts):
 * a dac uid held by a guest of one is refused to the other (dynamic ids skip it, a static label
 * names its holder), and comes free when the guest stops, by destroy or by QEMU exiting on its
 * own (svirt-cleanup's C). Real QEMU, real files, the claim dir this test file was given.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { claimDirFromEnv } from '../../src/store/host-claims.js';
import { startServer } from '../remote/support.js';
import {
  beforeScratchRemoval,
  countRows,
  domainXml,
  hostClaims,
  makeImage,
  owner,
  procStatus,
  qemuAsRootSkip,
  readRunning,
  scratch,
  svirt,
  svirtOk,
  waitFor,
  writeDomain,
} from '../helpers.js';

const skip = qemuAsRootSkip();
const DAC = ['--security-driver', 'dac,landlock'];
const ORIGINAL = { uid: 1000, gid: 1000, mode: 0o644 };

/** A state dir under scratch dir `root` with guest `g` defined on an image of its own, destroyed before `root` goes. */
async function stateDir(root: string, name: string, seclabel = ''): Promise<{ dir: string; image: string }> {
  const dir = join(root, name);
  mkdirSync(dir, { mode: 0o711 });
  const image = makeImage(join(dir, 'd0.img'), 1, ORIGINAL, ORIGINAL.mode);
  await svirtOk(dir, [...DAC, 'define', writeDomain(dir, 'g', domainXml('g', [{ path: image, dev: 'vda' }], seclabel))]);
  beforeScratchRemoval(root, async () => void (await svirt(dir, [...DAC, 'destroy', 'g'])));
  return { dir, image };
}

function uidOfGuest(dir: string): number {
  const pid = readRunning(dir)[0]?.pid;
  assert.ok(pid, 'the guest runs');
  return Number((procStatus(pid).get('Uid') ?? '').split(/\s+/)[0]);
}

/** The claims in this test file's claim dir that name state dir `dir`. */
function claimsOf(dir: string): string[] {
  const real = realpathSync(dir);
  return hostClaims()
    .filter((c) => c.stateDir === real)
    .map((c) => c.name);
}

describe('host-wide label claims across state dirs (real QEMU)', { skip }, () => {
  it('gives a dac uid to one state dir at a time, and to the other once the first guest is destroyed', async (t) => {
    const root = scratch(t, 'svirt-claims-');
    const a = await stateDir(root, 'a');
    const b = await stateDir(root, 'b');
    const env = { SVIRT_DAC_RANGE: '1950000200-1950000200' }; // one id: without claims both would get it
    await svirtOk(a.dir, [...DAC, 'start', 'g', '--paused'], env);
    assert.equal(uidOfGuest(a.dir), 1950000200);
    assert.deepEqual(claimsOf(a.dir), ['dac.1950000200']);
    const refused = await svirt(b.dir, [...DAC, 'start', 'g', '--paused'], env);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /no free dac id/);
    assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
    assert.deepEqual(owner(b.image), ORIGINAL, "the refused guest's image keeps its owner");
    assert.deepEqual([countRows(b.dir, 'running'), countRows(b.dir, 'reservations')], [0, 0], 'nothing is left in its store');
    await svirtOk(a.dir, [...DAC, 'destroy', 'g']);
    assert.deepEqual(claimsOf(a.dir), [], 'the claim went with the guest');
    await svirtOk(b.dir, [...DAC, 'start', 'g', '--paused'], env);
    assert.equal(uidOfGuest(b.dir), 1950000200);
    await svirtOk(b.dir, [...DAC, 'destroy', 'g']);
    assert.deepEqual(claimsOf(b.dir), []);
  });

  it('refuses a static uid a guest of another state dir runs under, naming it, until its QEMU exits', async (t) => {
    const root = scratch(t, 'svirt-claims-');
    const label = "\n  <seclabel type='static' model='dac' relabel='yes'><label>+1950000201:+1950000201</label></seclabel>";
    const a = await stateDir(root, 'a', label);
    const b = await stateDir(root, 'b', label);
    await svirtOk(a.dir, [...DAC, 'start', 'g', '--paused']);
    const uuidA = readRunning(a.dir)[0]?.uuid;
    const refused = await svirt(b.dir, [...DAC, 'start', 'g', '--paused']);
    assert.notEqual(refused.code, 0);
    assert.match(
      refused.stderr,
      new RegExp(`dac label \\+1950000201:\\+1950000201 of 'g' is in use by guest ${uuidA} of state dir ${realpathSync(a.dir)}`),
    );
    assert.deepEqual(owner(b.image), ORIGINAL);
    // QEMU exits by itself: the monitor's hook (svirt-cleanup, no Node) gives the uid back.
    const rec = readRunning(a.dir)[0];
    process.kill(rec?.pid as number, 'SIGKILL');
    assert.ok(await waitFor(() => countRows(a.dir, 'running') === 0, 20_000), 'cleaned up by the monitor hook');
    assert.deepEqual(claimsOf(a.dir), [], 'the claim went with the cleanup');
    await svirtOk(b.dir, [...DAC, 'start', 'g', '--paused']);
    assert.equal(uidOfGuest(b.dir), 1950000201);
  });

  it('svirt reconcile removes the claims its state dir left behind, and only those', async (t) => {
    const root = scratch(t, 'svirt-claims-');
    const a = await stateDir(root, 'a');
    const b = await stateDir(root, 'b');
    await svirtOk(a.dir, [...DAC, 'start', 'g', '--paused']);
    const held = claimsOf(a.dir);
    assert.equal(held.length, 1);
    const claims = claimDirFromEnv();
    // As a crash between a claim and its transaction's commit leaves them:
    const stale = `svirt-claim\n${realpathSync(a.dir)}\n00000000-0000-4000-8000-00000000000a\n`;
    writeFileSync(join(claims, 'dac.1950000299'), stale, { mode: 0o600 });
    const other = `svirt-claim\n${realpathSync(b.dir)}\n00000000-0000-4000-8000-00000000000b\n`;
    writeFileSync(join(claims, 'dac.1950000298'), other, { mode: 0o600 });
    const out = await svirtOk(a.dir, [...DAC, 'reconcile']);
    assert.match(out, /Stale label claim dac\.1950000299 removed/);
    assert.deepEqual(claimsOf(a.dir), held, "the running guest's claim stays");
    assert.equal(existsSync(join(claims, 'dac.1950000298')), true, "another state dir's claim is not this one's to judge");
    await svirtOk(b.dir, [...DAC, 'reconcile']);
    assert.equal(existsSync(join(claims, 'dac.1950000298')), false, 'its own reconcile removes it');
  });

  it('svirt serve removes the claims its state dir left behind before it listens', async (t) => {
    const root = scratch(t, 'svirt-claims-');
    const a = await stateDir(root, 'a');
    const stale = join(claimDirFromEnv(), 'dac.1950000297');
    mkdirSync(claimDirFromEnv(), { recursive: true, mode: 0o700 });
    writeFileSync(stale, `svirt-claim\n${realpathSync(a.dir)}\n00000000-0000-4000-8000-00000000000c\n`, { mode: 0o600 });
    await startServer(t, a.dir);
    assert.equal(existsSync(stale), false);
  });
});
