/**
 * A changing command's writes are on disk when it answers, also when another connection keeps
 * the store's WAL (src/store/wal-sync.ts): SQLite syncs the WAL only when it checkpoints, and a
 * connection's close checkpoints only when it is the last one open. Watched with strace, which
 * shows only the calls on `svirt.db-wal` (-P): after the last write to it there must be a sync
 * of it. Without the sync (checked by taking it out) the CLI's last call on the WAL is a pwrite.
 *
 * And a file's original owner is on disk before the file gets a guest's (Store.remember): a
 * start's chown to the guest uid comes after a sync of everything written to the WAL before it.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { stopChild } from '../../src/host/stop-child.js';
import {
  SVIRT_BIN,
  type CliResult,
  domainXml,
  haveQemu,
  isRoot,
  makeImage,
  resultOf,
  scratch,
  svirtOk,
  writeDomain,
} from '../helpers.js';
import { haveVirsh, startServer, virshOk } from './support.js';

const STRACE = '/usr/bin/strace';
const WATCHED = 'trace=pwrite64,pwritev,pwritev2,write,writev,ftruncate,fsync,fdatasync';

function skipWhy(): string | false {
  if (!existsSync(STRACE)) return 'strace is not installed (scripts/setup.sh installs it)';
  if (!haveQemu()) return 'define checks the emulator: QEMU is not installed';
  return isRoot() ? false : 'strace -p of svirt serve needs root here';
}

/**
 * The calls of an `strace -y` log, in order: each write or sync on the WAL that succeeded, and
 * each chown to a uid other than root's (a `-f` log's lines start with the pid).
 */
function walCalls(log: string): ('write' | 'sync' | 'chown')[] {
  const calls: ('write' | 'sync' | 'chown')[] = [];
  for (const line of log.split('\n')) {
    const call = line.replace(/^\d+\s+/, '');
    const chown = /^chown\("[^"]*", (\d+), -?\d+\)\s+=\s+0/.exec(call);
    if (chown) {
      if (Number(chown[1]) !== 0) calls.push('chown');
      continue;
    }
    const m = /^(\w+)\(\d+<[^>]*svirt\.db-wal>.*\)\s+=\s+(-?\d+)/.exec(call);
    if (!m || Number(m[2]) < 0) continue;
    calls.push(m[1] === 'fsync' || m[1] === 'fdatasync' ? 'sync' : 'write');
  }
  return calls;
}

function assertSyncedLast(log: string, what: string): void {
  const calls = walCalls(log);
  assert.ok(calls.includes('write'), `${what}: no write to the WAL was seen:\n${log}`);
  assert.equal(calls.at(-1), 'sync', `${what}: the last call on the WAL is a ${calls.at(-1)}, not a sync:\n${log}`);
}

/** `svirt --state-dir DIR ARGS` under strace with `traceArgs` (its -o among them), run by this process, not a warm worker. */
function underStrace(traceArgs: readonly string[], dir: string, args: readonly string[]): Promise<CliResult> {
  return resultOf(
    spawn(STRACE, [...traceArgs, '--', process.execPath, SVIRT_BIN, '--state-dir', dir, ...args], {
      env: { ...process.env, SVIRT_NO_WARM: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}

/** A connection that keeps the store open (and its WAL), as svirt serve does: closed when the test ends. */
function holdStore(t: TestContext, stateDir: string): void {
  const db = new Database(join(stateDir, 'svirt.db'));
  db.pragma('journal_mode = WAL');
  db.prepare('SELECT count(*) FROM domains').get();
  t.after(() => db.close());
}

describe('a changing command is on disk when it answers', { skip: skipWhy() }, () => {
  it('the CLI syncs the WAL that another connection keeps open, and a read-only verb syncs nothing', async (t) => {
    const dir = scratch(t);
    await svirtOk(dir, ['list', '--all']); // makes the store
    holdStore(t, dir);
    const file = writeDomain(dir, 'dur', domainXml('dur', []));
    const log = join(dir, 'strace.log');
    const run = (args: string[]) =>
      underStrace(['-f', '-qq', '-y', '-e', WATCHED, '-P', join(dir, 'svirt.db-wal'), '-o', log], dir, args);
    const defined = await run(['define', file]);
    assert.equal(defined.code, 0, defined.stderr);
    assertSyncedLast(readFileSync(log, 'utf8'), 'define');
    assert.ok(existsSync(join(dir, 'svirt.db-wal')), 'the other connection kept the WAL');

    const listed = await run(['list', '--all']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(walCalls(readFileSync(log, 'utf8')), [], 'list changed nothing, and synced nothing');

    const undefined_ = await run(['undefine', 'dur']);
    assert.equal(undefined_.code, 0, undefined_.stderr);
    assertSyncedLast(readFileSync(log, 'utf8'), 'undefine');
  });

  it("a start syncs the WAL before a file gets the guest's owner", async (t) => {
    const dir = scratch(t);
    const image = makeImage(join(dir, 'own.img'), 4, { uid: 1000, gid: 1000 }, 0o640);
    await svirtOk(dir, [
      '--security-driver',
      'dac',
      'define',
      writeDomain(dir, 'own', domainXml('own', [{ path: image, dev: 'vda' }])),
    ]);
    const log = join(dir, 'strace.log');
    // Not -f: the CLI's own thread writes the store and chowns; QEMU and its monitor live on.
    const started = await underStrace(['-qq', '-y', '-e', `${WATCHED},chown`, '-o', log], dir, [
      '--security-driver',
      'dac',
      'start',
      'own',
      '--paused',
    ]);
    assert.equal(started.code, 0, started.stderr);
    const calls = walCalls(readFileSync(log, 'utf8'));
    const first = calls.indexOf('chown');
    assert.ok(first > 0 && calls.slice(0, first).includes('write'), `no chown after a write to the WAL:\n${calls.join(' ')}`);
    calls.forEach((c, i) => {
      if (c !== 'chown') return;
      const before = calls
        .slice(0, i)
        .filter((x) => x !== 'chown')
        .at(-1);
      assert.equal(before, 'sync', `chown #${i}: the WAL's last call before it is a ${before}, not a sync:\n${calls.join(' ')}`);
    });
    await svirtOk(dir, ['--security-driver', 'dac', 'destroy', 'own']);
  });

  it(
    'svirt serve answers a changing call once the WAL is synced',
    { skip: haveVirsh() ? false : 'virsh is not installed' },
    async (t) => {
      const dir = scratch(t);
      const server = await startServer(t, dir, 'none');
      const log = join(dir, 'strace.log');
      // -f with -p attaches every thread of serve: the sync runs on libuv's thread pool.
      const tracer = spawn(
        STRACE,
        ['-f', '-qq', '-y', '-e', WATCHED, '-P', join(dir, 'svirt.db-wal'), '-o', log, '-p', String(server.pid)],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      t.after(() => stopChild(tracer, 5000));
      let tracerSaid = '';
      tracer.stderr.on('data', (d: Buffer) => (tracerSaid += d.toString()));
      const deadline = Date.now() + 10_000;
      while (!/^TracerPid:\s+[1-9]/m.test(readFileSync(`/proc/${server.pid}/status`, 'utf8'))) {
        if (tracer.exitCode !== null) {
          // ptrace refused (a Yama scope, a container without CAP_SYS_PTRACE): nothing to watch with
          t.skip(`strace could not attach to svirt serve: ${tracerSaid.trim()}`);
          return;
        }
        assert.ok(Date.now() < deadline, 'strace did not attach to svirt serve within 10 s');
        await new Promise((r) => setTimeout(r, 50));
      }
      const file = writeDomain(dir, 'remote', domainXml('remote', []));
      await virshOk(server.socket, ['define', file]);
      await stopChild(tracer, 5000); // detaches: the log is complete
      assertSyncedLast(readFileSync(log, 'utf8'), 'virsh define through serve');
      assert.match(await virshOk(server.socket, ['list', '--all', '--name']), /^remote$/m);
    },
  );
});
