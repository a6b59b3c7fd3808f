/**
 * svirt-cleanup (native/svirt-cleanup.c), the monitor's hook for a guest whose cleanup is
 * only owners, cgroup and record: what it gives back, what it hands to the full cleanup
 * (before changing anything), and what it does with a file swapped under it. Real QEMU, real
 * store, real files; each guest's monitor (and its backup) is killed first where a test runs
 * svirt-cleanup by hand, so no other hook competes.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { svirtCleanupPath } from '../../src/host/native.js';
import { svirtHookPath } from '../../src/host/package-root.js';
import { processStartTime } from '../../src/host/proc.js';
import { Hypervisor } from '../../src/lifecycle/hypervisor.js';
import { stackFromNames } from '../../src/security/stack.js';
import { SCHEMA_FINGERPRINT, Store } from '../../src/store/store.js';
import {
  beforeScratchRemoval,
  claimsOfGuest,
  countRows,
  domainXml,
  makeImage,
  owner,
  qemuAsRootSkip,
  readRunning,
  scratch,
  svirt,
  svirtOk,
  waitFor,
  writeDomain,
} from '../helpers.js';

const skip = qemuAsRootSkip();
const STACK = ['--security-driver', 'dac,landlock'];
const ORIGINAL = { uid: 1000, gid: 1000, mode: 0o644 };

interface Guest {
  readonly dir: string;
  readonly uuid: string;
  readonly images: string[];
  readonly pid: number;
  readonly monitor: number;
  /** The guest's cgroup directories, from its journal. */
  readonly cgroups: string[];
}

async function startGuest(t: TestContext, disks = 1): Promise<Guest> {
  const dir = scratch(t, 'svirt-cleanup-');
  const images = Array.from({ length: disks }, (_, i) => makeImage(join(dir, `d${i}.img`), 4, ORIGINAL, ORIGINAL.mode));
  const xml = domainXml(
    'g',
    images.map((path, i) => ({ path, dev: `vd${String.fromCharCode(97 + i)}` })),
  );
  await svirtOk(dir, [...STACK, 'define', writeDomain(dir, 'g', xml)]);
  await svirtOk(dir, [...STACK, 'start', 'g', '--paused']);
  const rec = readRunning(dir)[0];
  assert.ok(rec?.pid && rec.monitorPid, 'the guest runs under its monitor');
  const journal = JSON.parse(readFileSync(join(dir, 'cgroups', `${rec.uuid}.json`), 'utf8')) as { dirs: { dir: string }[] };
  const cgroups = journal.dirs.map((d) => d.dir);
  assert.equal(claimsOfGuest(rec.uuid).length, 1, 'the guest holds a host-wide claim on its uid');
  assert.ok(cgroups.length > 0 && cgroups.every((d) => existsSync(d)), 'the guest has its cgroup');
  return { dir, uuid: rec.uuid, images, pid: rec.pid, monitor: rec.monitorPid, cgroups };
}

function gone(pid: number): boolean {
  return processStartTime(pid) === undefined;
}

/** Kills the monitor and its backup (so no hook runs), and QEMU unless `keepQemu`. */
async function orphan(g: Guest, keepQemu = false): Promise<void> {
  const backups = readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p) && Number(p) !== g.pid)
    .filter((p) => {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === g.monitor;
      } catch {
        return false;
      }
    })
    .map(Number);
  for (const pid of [g.monitor, ...backups]) process.kill(pid, 'SIGKILL');
  assert.ok(await waitFor(() => [g.monitor, ...backups].every(gone), 5000), 'the monitor and its backup are gone');
  if (keepQemu) return;
  process.kill(g.pid, 'SIGKILL');
  assert.ok(await waitFor(() => gone(g.pid), 5000), 'QEMU is gone');
}

/** Runs svirt-cleanup by hand; its fallback only leaves a mark. */
function runCleanup(g: Guest, env: NodeJS.ProcessEnv = {}) {
  const mark = join(g.dir, 'fallback-ran');
  rmSync(mark, { force: true });
  const r = spawnSync(
    svirtCleanupPath(),
    ['--state-dir', g.dir, '--runtime-root', join(g.dir, 'run'), '--uuid', g.uuid, '--', '/bin/sh', '-c', ': > "$0"', mark],
    { encoding: 'utf8', env: { ...process.env, SVIRT_DEBUG: '1', ...env }, timeout: 30_000 },
  );
  return { status: r.status, signal: r.signal, stderr: r.stderr, fellBack: existsSync(mark) };
}

function withDb<T>(g: Guest, fn: (db: Database.Database) => T): T {
  const db = new Database(join(g.dir, 'svirt.db'), { timeout: 10_000 });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/**
 * Runs fn while another connection holds the store's write lock (an open BEGIN IMMEDIATE), as
 * the svirt that destroys a guest does at moments while its monitor's hook runs.
 */
function underWriteLock<T>(g: Guest, fn: () => T): { result: T; ms: number } {
  return withDb(g, (db) => {
    db.exec('BEGIN IMMEDIATE');
    try {
      const t0 = performance.now();
      const result = fn();
      return { result, ms: performance.now() - t0 };
    } finally {
      db.exec('ROLLBACK');
    }
  });
}

function record(g: Guest): { state: string; owner_pid: number | null } | undefined {
  return withDb(g, (db) => db.prepare('SELECT state, owner_pid FROM running WHERE uuid = ?').get(g.uuid)) as
    { state: string; owner_pid: number | null } | undefined;
}

/** Everything a cleanup gives back is back, and nothing of the guest is left. */
function assertCleanedUp(g: Guest, images = g.images): void {
  for (const image of images) assert.deepEqual(owner(image), ORIGINAL, `${image}'s owner and mode are back`);
  for (const table of ['running', 'reservations', 'remembered', 'remembered_users'] as const)
    assert.equal(countRows(g.dir, table), 0, `no ${table} row is left`);
  assert.deepEqual(readdirSync(join(g.dir, 'cgroups')), [], 'the cgroup journal is gone');
  assert.deepEqual(
    g.cgroups.filter((d) => existsSync(d)),
    [],
    'the cgroup directories are gone',
  );
  assert.deepEqual(claimsOfGuest(g.uuid), [], 'its host-wide label claim is gone');
  assert.ok(!existsSync(join(g.dir, 'run', g.uuid)), 'the runtime dir is gone');
  assert.ok(!existsSync(join(g.dir, 'run', 'monitor', `${g.uuid}.sock`)), 'the monitor socket is gone');
}

/** Swaps the first image for a link to a root file and replaces the second; puts links in the runtime dir. */
function swapFiles(g: Guest) {
  const [linked, replaced] = g.images as [string, string];
  const victim = makeImage(join(g.dir, 'victim'), 1, { uid: 0, gid: 0 }, 0o600);
  renameSync(linked, `${linked}.moved`);
  symlinkSync(victim, linked);
  writeFileSync(`${replaced}.new`, 'another file', { mode: 0o600 });
  renameSync(`${replaced}.new`, replaced);
  const outside = join(g.dir, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'keep'), 'x');
  const runtime = join(g.dir, 'run', g.uuid);
  symlinkSync(outside, join(runtime, 'link'));
  mkdirSync(join(runtime, 'a', 'b', 'c'), { recursive: true });
  symlinkSync(join(outside, 'keep'), join(runtime, 'a', 'b', 'c', 'link'));
  return { linked, replaced, victim, outside };
}

function assertSwappedOutcome(g: Guest, s: ReturnType<typeof swapFiles>, stderr: string): void {
  const warnings = stderr.split('\n').filter((l) => l.startsWith('warning: '));
  assert.equal(warnings.length, 2, stderr);
  assert.match(
    stderr,
    /warning: g: ".*d0\.img" is no longer the file svirt labelled \(a symbolic link is on the way\): left alone/,
  );
  assert.match(
    stderr,
    /warning: g: ".*d1\.img" is no longer the file svirt labelled \(device\/inode \d+\/\d+ became \d+\/\d+\): left alone/,
  );
  assert.deepEqual(owner(s.victim), { uid: 0, gid: 0, mode: 0o600 }, 'the link target is untouched');
  assert.deepEqual(owner(s.replaced), { uid: 0, gid: 0, mode: 0o600 }, 'the new file is untouched');
  assert.notEqual(owner(`${s.linked}.moved`).uid, ORIGINAL.uid, 'the labelled file moved away keeps its guest owner');
  assert.equal(readFileSync(join(s.outside, 'keep'), 'utf8'), 'x', 'what links in the runtime dir named is untouched');
  assertCleanedUp(g, []);
}

describe('svirt-cleanup, the monitor hook in C (real QEMU)', { skip }, () => {
  it('was written for the store schema svirt writes', () => {
    const r = spawnSync(svirtCleanupPath(), ['--schema'], { encoding: 'utf8' });
    assert.equal(
      Number(r.stdout.trim()),
      SCHEMA_FINGERPRINT,
      'the schema changed: check native/svirt-cleanup.c against it and src/lifecycle/stop.ts, then update SCHEMA_FINGERPRINT there',
    );
  });

  it('is the hook of a plain guest, and gives everything back when QEMU exits by itself', async (t) => {
    const g = await startGuest(t);
    const argv = readFileSync(`/proc/${g.monitor}/cmdline`, 'utf8').split('\0');
    assert.equal(argv[argv.indexOf('--hook') + 1], svirtCleanupPath(), `the monitor's hook: ${argv.join(' ')}`);
    assert.notDeepEqual(owner(g.images[0] as string), ORIGINAL, 'the guest owns its image while it runs');
    process.kill(g.pid, 'SIGKILL');
    assert.ok(await waitFor(() => countRows(g.dir, 'running') === 0 && gone(g.monitor), 10_000), 'cleaned up');
    assertCleanedUp(g);
  });

  it('hands a guest it does not take to the Node entry, which cleans it up', async (t) => {
    const g = await startGuest(t);
    // A helper journalled without a pid (its spawn was cut short): svirt-cleanup leaves helpers to Node.
    withDb(g, (db) =>
      db.prepare(`UPDATE running SET helpers = '[{"id":"x","token":"svirt-cleanup-test","pid":null,"startTime":null}]'`).run(),
    );
    process.kill(g.pid, 'SIGKILL');
    assert.ok(await waitFor(() => countRows(g.dir, 'running') === 0 && gone(g.monitor), 20_000), 'cleaned up by the Node entry');
    assertCleanedUp(g);
  });

  it('hands the Node entry the runtime root the guest started with, not STATE_DIR/run', async (t) => {
    // The system instance keeps its state in /var/lib/svirt and its runtime root in /run/svirt:
    // a library Hypervisor here, with the two apart, and the Node entry as the hook.
    const dir = scratch(t, 'svirt-hook-root-');
    const paths = { stateDir: join(dir, 'state'), runtimeRoot: join(dir, 'rt'), system: true };
    const store = Store.open(paths.stateDir);
    const config = { env: { ...process.env, SVIRT_CLEANUP: 'node' } };
    const hv = new Hypervisor({ paths, store, manager: await stackFromNames(['dac', 'landlock'], config), config });
    beforeScratchRemoval(dir, async () => {
      if (store.getRunningByName('g')) await hv.destroy('g');
      store.close();
    });
    const image = makeImage(join(dir, 'd0.img'), 4, ORIGINAL, ORIGINAL.mode);
    hv.define(domainXml('g', [{ path: image, dev: 'vda' }]));
    const rec = await hv.start('g', { paused: true });
    const argv = readFileSync(`/proc/${rec.monitorPid}/cmdline`, 'utf8').split('\0');
    const hook: string[] = [];
    for (let i = 0; i < argv.length; i++) if (argv[i] === '--hook') hook.push(argv[++i] as string);
    assert.deepEqual(
      hook.slice(1),
      [svirtHookPath(), paths.stateDir, paths.runtimeRoot],
      `the monitor's hook: ${argv.join(' ')}`,
    );
    const socket = join(paths.runtimeRoot, 'monitor', `${rec.uuid}.sock`);
    assert.ok(existsSync(socket), "the guest's monitor socket is in its runtime root");
    // A console session's lock whose holder died (src/lifecycle/console-session.ts): stop removes it.
    const lock = join(paths.runtimeRoot, 'monitor', `${rec.uuid}.serial0.console`);
    writeFileSync(lock, 'a holder long gone\n', { mode: 0o600 });
    process.kill(rec.pid as number, 'SIGKILL');
    assert.ok(
      await waitFor(() => countRows(paths.stateDir, 'running') === 0 && gone(rec.monitorPid as number), 20_000),
      'cleaned up by the Node entry',
    );
    assert.deepEqual(owner(image), ORIGINAL, "the image's owner and mode are back");
    assert.equal(existsSync(socket), false, 'the monitor socket in the runtime root is removed');
    assert.equal(existsSync(lock), false, "the dead session's console lock in the runtime root is removed");
    assert.equal(existsSync(join(paths.runtimeRoot, rec.uuid)), false, 'and the runtime dir');
    assert.equal(existsSync(join(paths.stateDir, 'run')), false, 'nothing was looked for or made in STATE_DIR/run');
  });

  it('cleans up by itself, without its fallback; a guest with no record is nothing to do', async (t) => {
    const g = await startGuest(t, 2);
    await orphan(g);
    // learnt in a read: it never waits for the store's write lock (its busy wait is 10 s)
    const { result: none, ms } = underWriteLock(g, () => runCleanup({ ...g, uuid: '00000000-0000-4000-8000-000000000000' }));
    assert.deepEqual([none.status, none.fellBack], [0, false], none.stderr);
    assert.ok(ms < 5_000, `no record: done without the write lock (${ms.toFixed(0)} ms)`);
    const r = runCleanup(g);
    assert.deepEqual([r.status, r.fellBack, r.stderr], [0, false, '']);
    assertCleanedUp(g);
  });

  it('hands every other guest to the full cleanup before changing anything', async (t) => {
    const g = await startGuest(t);
    await orphan(g, true);
    const alive = runCleanup(g);
    assert.ok(alive.fellBack, 'QEMU still runs: the full cleanup decides');
    assert.match(alive.stderr, /its QEMU \(pid \d+\) still runs: the full cleanup takes it/);
    process.kill(g.pid, 'SIGKILL');
    assert.ok(await waitFor(() => gone(g.pid), 5000));
    const guestOwner = owner(g.images[0] as string);
    const remembered = countRows(g.dir, 'remembered_users');
    const lock = join(g.dir, 'run', 'monitor', `${g.uuid}.serial0.console`);
    const cases: { why: RegExp; set: (db: Database.Database) => void; undo: (db: Database.Database) => void }[] = [
      {
        why: /helper processes/,
        set: (db) => db.prepare(`UPDATE running SET helpers = '[{"id":"net0","token":"t","pid":null,"startTime":null}]'`).run(),
        undo: (db) => db.prepare('UPDATE running SET helpers = NULL').run(),
      },
      {
        why: /an operation on it is pending/,
        set: (db) => db.prepare(`UPDATE running SET pending = '{"op":"save"}'`).run(),
        undo: (db) => db.prepare('UPDATE running SET pending = NULL').run(),
      },
      {
        why: /its stack restores more than owners/,
        set: (db) => db.prepare(`UPDATE running SET stack = '["selinux","dac"]'`).run(),
        undo: (db) => db.prepare(`UPDATE running SET stack = '["dac","landlock"]'`).run(),
      },
      {
        why: /it has a TPM/,
        set: (db) =>
          db.prepare(`UPDATE running SET live_xml = replace(live_xml, '</devices>', '<tpm model=''tpm-crb''/></devices>')`).run(),
        undo: (db) => db.prepare(`UPDATE running SET live_xml = replace(live_xml, '<tpm model=''tpm-crb''/>', '')`).run(),
      },
      {
        why: /a resource of role chardev/,
        set: (db) =>
          db
            .prepare(
              `UPDATE running SET resources = json_insert(resources, '$[#]', json('{"path":"/tmp/s","role":"chardev","seclabels":[]}'))`,
            )
            .run(),
        undo: (db) => db.prepare(`UPDATE running SET resources = json_remove(resources, '$[#-1]')`).run(),
      },
      {
        why: /it has taps/,
        set: (db) => db.prepare("INSERT INTO guest_taps VALUES (?, 'vnet9', 99, 1, 'br0', NULL)").run(g.uuid),
        undo: (db) => db.prepare('DELETE FROM guest_taps').run(),
      },
      {
        why: /it holds a dac label of \/srv\/elsewhere/,
        set: (db) => db.prepare("INSERT INTO remembered_users VALUES ('dac', '/srv/elsewhere', ?)").run(g.uuid),
        undo: (db) => db.prepare("DELETE FROM remembered_users WHERE path = '/srv/elsewhere'").run(),
      },
      {
        why: /the store's schema is 7/,
        set: (db) => db.pragma('user_version = 7'),
        undo: (db) => db.pragma(`user_version = ${SCHEMA_FINGERPRINT}`),
      },
      {
        why: /a console session lock of it exists/,
        set: () => writeFileSync(lock, `${process.pid} 1 cli`),
        undo: () => rmSync(lock),
      },
    ];
    for (const c of cases) {
      withDb(g, c.set);
      const r = runCleanup(g);
      withDb(g, c.undo);
      assert.ok(r.fellBack, `${c.why}: the fallback ran`);
      assert.match(r.stderr, c.why);
      assert.deepEqual(record(g), { state: 'running', owner_pid: null }, `${c.why}: the record is as it was`);
      assert.deepEqual(owner(g.images[0] as string), guestOwner, `${c.why}: the image is untouched`);
      assert.equal(countRows(g.dir, 'remembered_users'), remembered, `${c.why}: the journal is untouched`);
    }
    // A guest a live svirt is stopping (destroy) is its own: nothing runs, Node included.
    const me = { pid: process.pid, start: processStartTime(process.pid) };
    withDb(g, (db) => db.prepare("UPDATE running SET state = 'stopping', owner_pid = ?, owner_start = ?").run(me.pid, me.start));
    // learnt in a read: the stopping svirt's transactions never wait for this hook's lock
    const { result: busy, ms } = underWriteLock(g, () => runCleanup(g));
    assert.deepEqual([busy.status, busy.fellBack], [0, false], busy.stderr);
    assert.ok(ms < 5_000, `a live owner: done without the write lock (${ms.toFixed(0)} ms)`);
    assert.match(busy.stderr, new RegExp(`it is stopping, owned by the live process ${process.pid}: nothing to do`));
    assert.deepEqual(record(g), { state: 'stopping', owner_pid: process.pid });
    withDb(g, (db) => db.prepare('UPDATE running SET owner_start = owner_start + 1').run());
    const dead = runCleanup(g);
    assert.ok(dead.fellBack, 'an owner that is gone: the full cleanup repairs');
    assert.match(dead.stderr, /it is stopping and its owner is gone/);
    withDb(g, (db) => db.prepare("UPDATE running SET state = 'running', owner_pid = NULL, owner_start = NULL").run());
    const r = runCleanup(g);
    assert.deepEqual([r.status, r.fellBack], [0, false], r.stderr);
    assertCleanedUp(g);
  });

  it('leaves a file swapped for a link or replaced alone, forgets it, and removes links as links', async (t) => {
    const g = await startGuest(t, 2);
    await orphan(g);
    const swapped = swapFiles(g);
    const r = runCleanup(g);
    assert.deepEqual([r.status, r.fellBack], [0, false], r.stderr);
    assertSwappedOutcome(g, swapped, r.stderr);
  });

  it('ends as the Node entry ends on the same swapped files', async (t) => {
    const g = await startGuest(t, 2);
    await orphan(g);
    const swapped = swapFiles(g);
    const r = spawnSync(process.execPath, [svirtHookPath(), g.dir], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assertSwappedOutcome(g, swapped, r.stderr);
  });

  it('leaves a guest whose owner cannot come back to the full cleanup, which finishes once it can', async (t) => {
    const g = await startGuest(t);
    await orphan(g);
    const image = g.images[0] as string;
    if (spawnSync('chattr', ['+i', image]).status !== 0) return t.skip('chattr +i does not work on this file system');
    t.after(() => spawnSync('chattr', ['-i', image]));
    const r = runCleanup(g);
    assert.ok(r.fellBack, 'the full cleanup runs at once');
    assert.match(
      r.stderr,
      /svirt-cleanup: guest [0-9a-f-]+: cannot chown ".*d0\.img" to \+1000:\+1000: Operation not permitted; the full cleanup takes over/,
    );
    assert.deepEqual(record(g), { state: 'stopping', owner_pid: null }, 'abandoned for the next reconcile');
    assert.equal(withDb(g, (db) => db.prepare('SELECT path FROM remembered_users').pluck().all()).join(), image);
    spawnSync('chattr', ['-i', image]);
    await svirtOk(g.dir, [...STACK, 'list', '--all']);
    assertCleanedUp(g);
  });

  it('leaves a runtime dir past its bounds to the full cleanup, before the record goes', async (t) => {
    const g = await startGuest(t);
    await orphan(g);
    const deep = join(g.dir, 'run', g.uuid, ...Array.from({ length: 20 }, (_, i) => `d${i}`));
    mkdirSync(deep, { recursive: true }); // QEMU owned its runtime dir: it could have made this
    const r = runCleanup(g);
    assert.ok(r.fellBack, r.stderr);
    assert.match(r.stderr, /is nested deeper than 16; the full cleanup takes over/);
    assert.deepEqual(record(g), { state: 'stopping', owner_pid: null }, 'the record stays for the full cleanup');
    await svirtOk(g.dir, [...STACK, 'list', '--all']);
    assertCleanedUp(g);
  });

  it("takes a KVM guest's uid out of /dev/kvm's ACL as the Node entry does (a /dev of the test's own)", async (t) => {
    // No /dev/kvm here: each cleanup runs in a mount namespace whose /dev is a tmpfs holding a
    // plain file `kvm` with real ACL xattrs (and the host's null, zero, urandom).
    const other = { uuid: '22222222-2222-4222-8222-222222222222', uid: 1_900_099_999 };
    const acl = `const a = await import('${new URL('../../src/host/acl.js', import.meta.url).href}');`;
    const uidOf = (g: Guest) =>
      Number(withDb(g, (db) => db.prepare("SELECT label FROM reservations WHERE driver = 'dac'").pluck().get()));
    const inNamespace = (g: Guest, shared: boolean, cleanup: string[]) => {
      const dev = join(g.dir, 'fakedev');
      mkdirSync(dev);
      const grants = [...(shared ? [other.uid] : []), uidOf(g)].map((u) => `a.grantUser('/dev/kvm', ${u}, 6);`).join(' ');
      const script = [
        'set -e',
        `mount -t tmpfs -o mode=755 none ${dev}`,
        `for d in null zero urandom; do touch ${dev}/$d; mount --bind /dev/$d ${dev}/$d; done`,
        `touch ${dev}/kvm; chmod 0640 ${dev}/kvm`, // group r: the ACL's mask (rw) shows there while it has one
        `mount --rbind ${dev} /dev`,
        `${process.execPath} --input-type=module -e "${acl} ${grants}"`,
        `"$@" >&2 || true`,
        `${process.execPath} --input-type=module -e "${acl} const fs = await import('node:fs'); console.log(JSON.stringify({ users: a.aclUsers('/dev/kvm'), mode: fs.statSync('/dev/kvm').mode & 0o7777 }))"`,
      ].join('\n');
      const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', ...cleanup], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout.trim()) as { users: number[]; mode: number };
    };
    for (const shared of [true, false]) {
      const a = await startGuest(t);
      const b = await startGuest(t);
      await Promise.all([orphan(a), orphan(b)]);
      for (const g of [a, b]) {
        // what the dac driver journals for a KVM guest before it grants the ACL entry
        withDb(g, (db) => {
          db.prepare("INSERT INTO remembered VALUES ('dac', '/dev/kvm', 'acl')").run();
          db.prepare("INSERT INTO remembered_users VALUES ('dac', '/dev/kvm', ?)").run(g.uuid);
          if (shared) db.prepare("INSERT INTO remembered_users VALUES ('dac', '/dev/kvm', ?)").run(other.uuid);
        });
      }
      const args = ['--state-dir', a.dir, '--runtime-root', join(a.dir, 'run'), '--uuid', a.uuid];
      const viaC = inNamespace(a, shared, [svirtCleanupPath(), ...args, '--', '/bin/false']);
      const viaNode = inNamespace(b, shared, [process.execPath, svirtHookPath(), b.dir]);
      const left = shared ? [other.uid] : [];
      assert.deepEqual(
        viaC,
        { users: left, mode: shared ? 0o660 : 0o640 },
        `shared ${shared}: only the other guest's entry is left`,
      );
      assert.deepEqual(viaNode, viaC, `shared ${shared}: the Node entry ends the same`);
      for (const g of [a, b]) {
        assert.equal(countRows(g.dir, 'running'), 0, 'cleaned up');
        const rows = withDb(g, (db) => db.prepare('SELECT path, uuid FROM remembered_users').all());
        assert.deepEqual(rows, shared ? [{ path: '/dev/kvm', uuid: other.uuid }] : []);
        assert.equal(countRows(g.dir, 'remembered'), shared ? 1 : 0);
      }
    }
  });

  it('releases only its own use of a file another guest still holds', async (t) => {
    const g = await startGuest(t);
    await orphan(g);
    const image = g.images[0] as string;
    const other = '11111111-1111-4111-8111-111111111111';
    withDb(g, (db) => db.prepare("INSERT INTO remembered_users VALUES ('dac', ?, ?)").run(image, other));
    const held = owner(image);
    const r = runCleanup(g);
    assert.deepEqual([r.status, r.fellBack], [0, false], r.stderr);
    assert.deepEqual(owner(image), held, 'not given back while another guest holds it');
    const rows = withDb(g, (db) => db.prepare('SELECT path, uuid FROM remembered_users').all());
    assert.deepEqual(rows, [{ path: image, uuid: other }]);
    assert.equal(countRows(g.dir, 'remembered'), 1, "the original owner stays for the other guest's restore");
    assert.equal(countRows(g.dir, 'running'), 0);
  });

  it('killed after the restore, is finished by the next command', async (t) => {
    const g = await startGuest(t);
    await orphan(g);
    const r = runCleanup(g, { SVIRT_TEST_CRASH_AT: 'cleanup:restored' });
    assert.deepEqual([r.signal, r.fellBack], ['SIGKILL', false]);
    assert.equal(record(g)?.state, 'stopping');
    assert.deepEqual(owner(g.images[0] as string), ORIGINAL, 'restored before the crash');
    const listed = await svirt(g.dir, [...STACK, 'list', '--all']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /g\s+shut off/);
    assertCleanedUp(g);
  });
});
