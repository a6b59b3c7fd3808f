import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { aclUsers } from '../../src/host/acl.js';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { QmpClient } from '../../src/qemu/qmp-client.js';
import {
  countRows,
  domainXml,
  makeImage,
  owner,
  procStatus,
  readRunning,
  scratch,
  svirt,
  svirtOk,
  waitFor,
  writeDomain,
  qemuAsRootSkip,
  resultOf,
  SVIRT_BIN,
} from '../helpers.js';

const skip = qemuAsRootSkip();
const DAC = ['--security-driver', 'dac'];
const ORIGINAL = { uid: 1000, gid: 1000 };

/** Runs `svirt ARGS` in dist/svirt-read.cjs alone, in a child: its answer (a status, or 'full') and what it printed. */
async function readBundleAlone(
  dir: string,
  args: readonly string[],
): Promise<{ answer: unknown; stdout: string; stderr: string }> {
  const script = [
    `const { READ_BUNDLE, load } = require(${JSON.stringify(SVIRT_BIN)});`,
    'load(READ_BUNDLE).exports.main(JSON.parse(process.argv[1]))',
    '  .then((a) => { process.exitCode = 0; require("node:fs").writeFileSync(3, JSON.stringify(a)); });',
  ].join('\n');
  const child = spawn(process.execPath, ['-e', script, JSON.stringify(['--state-dir', dir, ...args])], {
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
  });
  let answer = '';
  (child.stdio[3] as Readable).on('data', (d: Buffer) => (answer += d.toString()));
  const r = await resultOf(child as unknown as Parameters<typeof resultOf>[0]);
  assert.equal(r.code, 0, r.stderr);
  return { answer: JSON.parse(answer) as unknown, stdout: r.stdout, stderr: r.stderr };
}

async function startTwo(dir: string, stack: string[] = DAC) {
  const a = makeImage(join(dir, 'a.img'), 4, ORIGINAL, 0o644);
  const b = makeImage(join(dir, 'b.img'), 4, { uid: 0, gid: 0 }, 0o640);
  await svirtOk(dir, [...stack, 'define', writeDomain(dir, 'ga', domainXml('ga', [{ path: a, dev: 'vda' }]))]);
  await svirtOk(dir, [...stack, 'define', writeDomain(dir, 'gb', domainXml('gb', [{ path: b, dev: 'vda' }]))]);
  await Promise.all([svirtOk(dir, [...stack, 'start', 'ga', '--paused']), svirtOk(dir, [...stack, 'start', 'gb', '--paused'])]);
  const rows = readRunning(dir);
  const pa = rows.find((r) => r.name === 'ga')?.pid;
  const pb = rows.find((r) => r.name === 'gb')?.pid;
  assert.ok(pa && pb, 'both guests have a pid');
  return { a, b, pa, pb, qmpA: join(dir, 'run', 'monitor', `${rows.find((r) => r.name === 'ga')?.uuid ?? ''}.sock`) };
}

function uidOf(pid: number): number[] {
  return (procStatus(pid).get('Uid') ?? '').split(/\s+/).map(Number);
}

describe('svirt core with the dac driver (real QEMU)', { skip }, () => {
  it('runs two guests under distinct non-root uids and hands each image over while it runs', async (t) => {
    const dir = scratch(t);
    const { a, b, pa, pb } = await startTwo(dir);
    const ua = uidOf(pa);
    const ub = uidOf(pb);
    assert.equal(new Set(ua).size, 1, 'real, effective, saved and fs uid are one');
    assert.notEqual(ua[0], 0);
    assert.notEqual(ub[0], 0);
    assert.notEqual(ua[0], ub[0], 'each guest has its own uid');
    const st = procStatus(pa);
    assert.equal(st.get('Groups'), '', 'no supplementary groups');
    assert.equal(st.get('CapEff'), '0000000000000000', 'no capabilities');
    assert.equal(st.get('NoNewPrivs'), '1');
    assert.equal(owner(a).uid, ua[0]);
    assert.equal(owner(b).uid, ub[0]);
    assert.equal(owner(a).mode, 0o600);

    const info = await svirtOk(dir, [...DAC, 'dominfo', 'ga']);
    assert.match(info, /^Security model: dac$/m);
    assert.match(info, /^Security DOI:\s+0$/m);
    assert.match(info, new RegExp(`^Security label: \\+${ua[0]}:\\+${ua[0]}$`, 'm'));
    const xml = await svirtOk(dir, [...DAC, 'dumpxml', 'ga']);
    assert.match(
      xml,
      new RegExp(
        `<seclabel type='dynamic' model='dac' relabel='yes'>\\s*<label>\\+${ua[0]}:\\+${ua[0]}</label>\\s*<imagelabel>\\+${ua[0]}:\\+${ua[0]}</imagelabel>`,
      ),
    );

    await svirtOk(dir, [...DAC, 'destroy', 'ga']);
    assert.deepEqual(owner(a), { ...ORIGINAL, mode: 0o644 }, 'non-root original owner and mode are back after destroy');
    await svirtOk(dir, [...DAC, 'shutdown', 'gb', '--mode', 'signal', '--timeout', '20']);
    assert.deepEqual(owner(b), { uid: 0, gid: 0, mode: 0o640 }, 'owner back after shutdown');
    assert.equal(countRows(dir, 'reservations'), 0);
    assert.equal(countRows(dir, 'running'), 0);
    assert.equal(countRows(dir, 'remembered'), 0);
  });

  it('cleans up a guest killed with SIGKILL without any svirt command (the monitor) and on the next command', async (t) => {
    const dir = scratch(t);
    const { a, b, pa, pb } = await startTwo(dir);
    process.kill(pa, 'SIGKILL');
    // The monitor restores the owner first and drops the running row after it (crash-safe order), so wait for both.
    const cleaned = await waitFor(() => owner(a).uid === ORIGINAL.uid && readRunning(dir).length === 1, 5000);
    assert.ok(cleaned, 'the per-guest monitor restored the owner and dropped the row within 5 s');
    assert.deepEqual(owner(a), { ...ORIGINAL, mode: 0o644 });
    // Second path: kill the monitor and its backup (which would run the hook once QEMU is gone)
    // first, so only the next command can notice.
    assert.deepEqual(
      readRunning(dir).map((r) => r.pid),
      [pb],
    );
    const { execFileSync } = await import('node:child_process');
    const monitorPid = Number(execFileSync('ps', ['-o', 'ppid=', '-p', String(pb)], { encoding: 'utf8' }).trim());
    const backups = execFileSync('ps', ['-o', 'pid=', '--ppid', String(monitorPid)], { encoding: 'utf8' })
      .split('\n')
      .map((l) => Number(l.trim()))
      .filter((pid) => pid > 0 && pid !== pb);
    assert.equal(backups.length, 1, `the monitor ${monitorPid} has one backup beside QEMU`);
    for (const pid of [monitorPid, ...backups]) process.kill(pid, 'SIGKILL');
    process.kill(pb, 'SIGKILL');
    await waitFor(() => !existsSync(`/proc/${pb}/status`) || !procStatus(pb).get('State')?.startsWith('S'), 2000);
    // The read bundle alone stops before the cleanup, having changed and printed nothing
    // (src/cli/main-read.ts); the CLI then runs the command in the full bundle, which cleans up.
    const alone = await readBundleAlone(dir, [...DAC, 'list', '--all']);
    assert.deepEqual(alone, { answer: 'full', stdout: '', stderr: '' });
    assert.equal(readRunning(dir)[0]?.state, 'running', 'the read bundle left the record as it was');
    assert.notEqual(owner(b).uid, 0, 'the guest still owns its image');
    const listed = await svirtOk(dir, [...DAC, 'list', '--all']);
    assert.equal(listed.match(/Id {3}Name/g)?.length, 1, `printed once:\n${listed}`);
    assert.match(listed, /gb\s+shut off/);
    assert.deepEqual(owner(b), { uid: 0, gid: 0, mode: 0o640 });
    assert.equal(countRows(dir, 'running'), 0);
    assert.equal(countRows(dir, 'reservations'), 0);
  });

  it("denies guest A's monitor B's image (rw and ro) while A's own disk works", async (t) => {
    const dir = scratch(t);
    const { b, qmpA } = await startTwo(dir);
    const q = await QmpClient.connect(qmpA);
    t.after(() => q.close());
    for (const ro of [false, true]) {
      await assert.rejects(
        q.execute('blockdev-add', { driver: 'file', filename: b, 'node-name': `steal${ro ? 'ro' : 'rw'}`, 'read-only': ro }),
        /Permission denied/,
      );
    }
    const w = await q.hmp('qemu-io -d /machine/peripheral/disk-vda/virtio-backend "write -P 0x5a 0 4k"');
    assert.doesNotMatch(w, /error|denied|fail/i, w);
    const r = await q.hmp('qemu-io -d /machine/peripheral/disk-vda/virtio-backend "read -P 0x5a 0 4k"');
    assert.doesNotMatch(r, /error|denied|fail|verification/i, r);
  });

  it('fails to start a guest whose disk is missing and leaves nothing behind', async (t) => {
    const dir = scratch(t);
    const present = makeImage(join(dir, 'present.img'), 4, ORIGINAL, 0o644);
    const xml = domainXml('broken', [
      { path: present, dev: 'vda' },
      { path: join(dir, 'missing.img'), dev: 'vdb' },
    ]);
    await svirtOk(dir, [...DAC, 'define', writeDomain(dir, 'broken', xml)]);
    const r = await svirt(dir, [...DAC, 'start', 'broken', '--paused']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^error: .*missing\.img.*ENOENT/m);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(countRows(dir, 'reservations'), 0);
    assert.equal(countRows(dir, 'running'), 0);
    assert.equal(countRows(dir, 'remembered'), 0);
    assert.deepEqual(owner(present), { ...ORIGINAL, mode: 0o644 });
    assert.equal(countRows(dir, 'domains'), 1, 'the definition is kept');
  });

  it(
    'gives KVM guests /dev/kvm through per-uid ACL entries and takes them back',
    { skip: existsSync('/dev/kvm') ? false : 'no /dev/kvm on this host' },
    async (t) => {
      const dir = scratch(t);
      const before = statSync('/dev/kvm').mode;
      for (const n of ['k1', 'k2']) {
        const img = makeImage(join(dir, `${n}.img`), 1);
        const xml = domainXml(n, [{ path: img, dev: 'vda' }]).replace("<domain type='qemu'>", "<domain type='kvm'>");
        await svirtOk(dir, [...DAC, 'define', writeDomain(dir, n, xml)]);
        await svirtOk(dir, [...DAC, 'start', n, '--paused']);
      }
      const uids = readRunning(dir).map((r) => uidOf(r.pid ?? 0)[0]);
      assert.deepEqual(aclUsers('/dev/kvm').sort(), [...uids].sort(), 'each KVM guest uid has its own entry');
      await svirtOk(dir, [...DAC, 'destroy', 'k1']);
      assert.equal(aclUsers('/dev/kvm').length, 1, 'the other guest keeps its entry');
      await svirtOk(dir, [...DAC, 'destroy', 'k2']);
      assert.deepEqual(aclUsers('/dev/kvm'), []);
      assert.equal(statSync('/dev/kvm').mode, before, '/dev/kvm is exactly as before');
    },
  );

  it('takes the labels of running guests again when their reservations were lost', async (t) => {
    const dir = scratch(t);
    await startTwo(dir);
    const db = new Database(join(dir, 'svirt.db'));
    db.prepare('DELETE FROM reservations').run();
    db.close();
    await svirtOk(dir, [...DAC, 'list']);
    assert.equal(countRows(dir, 'reservations'), 2, 'both uids are reserved again');
  });

  it('never gives two guests started at the same moment one uid', async (t) => {
    const dir = scratch(t);
    const names = ['p1', 'p2', 'p3', 'p4'];
    for (const n of names) {
      const img = makeImage(join(dir, `${n}.img`), 1);
      await svirtOk(dir, [...DAC, 'define', writeDomain(dir, n, domainXml(n, [{ path: img, dev: 'vda' }]))]);
    }
    // A one-id... four-id range forces collisions if reservations were not atomic.
    const env = { SVIRT_DAC_RANGE: '1900000000-1900000003' };
    const results = await Promise.all(names.map((n) => svirt(dir, [...DAC, 'start', n, '--paused'], env)));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const uids = readRunning(dir).map((r) => uidOf(r.pid ?? 0)[0]);
    assert.equal(new Set(uids).size, 4, `distinct uids: ${uids.join(',')}`);
    const fifth = makeImage(join(dir, 'p5.img'), 1);
    await svirtOk(dir, [...DAC, 'define', writeDomain(dir, 'p5', domainXml('p5', [{ path: fifth, dev: 'vda' }]))]);
    const r5 = await svirt(dir, [...DAC, 'start', 'p5', '--paused'], env);
    assert.notEqual(r5.code, 0);
    assert.match(r5.stderr, /no free dac id/);
  });
});
