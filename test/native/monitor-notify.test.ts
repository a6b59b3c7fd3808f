import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { listenUnixAt, openPath, svirtMonitorPath } from '../../src/host/native.js';
import { isRoot, killQuietly, tempDir, waitFor } from '../helpers.js';

/** The hook: writes its status to a file, so a run is visible. */
function hookArgs(out: string): string[] {
  return ['/bin/sh', '-c', `echo "$SVIRT_CHILD_STATUS" > ${out}`].flatMap((a) => ['--hook', a]);
}

/** A notify server answering each line with `answer` (undefined: never answers); records the lines. */
async function notifyServer(
  t: TestContext,
  path: string,
  answer: string | undefined,
): Promise<{ lines: string[]; server: Server }> {
  const lines: string[] = [];
  const held: Socket[] = [];
  const server = createServer((s) => {
    held.push(s);
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString();
      if (!buf.includes('\n')) return;
      lines.push(buf);
      if (answer !== undefined) s.end(answer);
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(() => {
    for (const s of held) s.destroy();
    server.close();
  });
  return { lines, server };
}

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

function runMonitor(t: TestContext, args: readonly string[], child = ['/bin/sh', '-c', 'exit 3']): Promise<Run> {
  const t0 = performance.now();
  const m = spawn(svirtMonitorPath(), [...args, '--', ...child], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => killQuietly(m.pid));
  let stdout = '';
  let stderr = '';
  m.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  m.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => m.on('close', (code) => resolve({ code, stdout, stderr, ms: performance.now() - t0 })));
}

const childPid = (stdout: string): number => Number(/^pid (\d+)\n/.exec(stdout)?.[1]);

describe('svirt-monitor --notify', () => {
  it('tells the server "exited <pid> <status>" and runs no hook once it answers "done"', async (t) => {
    const dir = tempDir(t, 'svirt-notify-');
    const sock = join(dir, 'notify.sock');
    const srv = await notifyServer(t, sock, 'done\n');
    const out = join(dir, 'hook.out');
    const r = await runMonitor(t, [...hookArgs(out), '--notify', sock]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^pid \d+\nexit 3\n$/);
    assert.deepEqual(srv.lines, [`exited ${childPid(r.stdout)} exit 3\n`]);
    assert.equal(existsSync(out), false, 'the hook did not run');
    assert.equal(r.stderr, '');
  });

  it('runs the hook when the answer is anything but "done"', async (t) => {
    const dir = tempDir(t, 'svirt-notify-');
    const sock = join(dir, 'notify.sock');
    const srv = await notifyServer(t, sock, 'failed\n');
    const out = join(dir, 'hook.out');
    const r = await runMonitor(t, [...hookArgs(out), '--notify', sock]);
    assert.equal(srv.lines.length, 1);
    assert.equal(readFileSync(out, 'utf8'), 'exit 3\n');
    assert.equal(
      r.stderr,
      'svirt-monitor: svirt serve did not confirm the cleanup (its answer was not "done"); running the hook\n',
    );
  });

  it('runs the hook, saying nothing, when no server listens (no socket, or a stale one)', async (t) => {
    const dir = tempDir(t, 'svirt-notify-');
    const out = join(dir, 'hook.out');
    const none = await runMonitor(t, [...hookArgs(out), '--notify', join(dir, 'absent.sock')]);
    assert.equal(readFileSync(out, 'utf8'), 'exit 3\n');
    assert.equal(none.stderr, '');
    rmSync(out);
    // A socket file nobody accepts on: what a serve killed by SIGKILL leaves.
    const dfd = openPath(dir);
    closeSync(listenUnixAt(dfd, 'stale.sock'));
    closeSync(dfd);
    const stale = await runMonitor(t, [...hookArgs(out), '--notify', join(dir, 'stale.sock')]);
    assert.equal(readFileSync(out, 'utf8'), 'exit 3\n');
    assert.equal(stale.stderr, '');
  });

  it('waits at most 5 s for an answer, then runs the hook', async (t) => {
    const dir = tempDir(t, 'svirt-notify-');
    const sock = join(dir, 'notify.sock');
    const srv = await notifyServer(t, sock, undefined);
    const out = join(dir, 'hook.out');
    const r = await runMonitor(t, [...hookArgs(out), '--notify', sock]);
    t.diagnostic(`the monitor gave up after ${r.ms.toFixed(0)} ms`);
    assert.equal(srv.lines.length, 1);
    assert.equal(readFileSync(out, 'utf8'), 'exit 3\n');
    assert.match(r.stderr, /did not confirm the cleanup \(no answer in time\); running the hook/);
    assert.ok(r.ms >= 4900 && r.ms < 15_000, `${r.ms} ms`);
  });

  it('follows no symlink on the way to the socket', async (t) => {
    const dir = tempDir(t, 'svirt-notify-');
    mkdirSync(join(dir, 'real', 'sub'), { recursive: true });
    const srv = await notifyServer(t, join(dir, 'real', 'sub', 'notify.sock'), 'done\n');
    symlinkSync(join(dir, 'real'), join(dir, 'link'));
    symlinkSync(join(dir, 'real', 'sub'), join(dir, 'sublink'));
    const out = join(dir, 'hook.out');
    for (const [via, why] of [
      ['link/sub', 'Too many levels of symbolic links'], // a link on the way
      ['sublink', 'Not a directory'], // the directory itself is the link
    ] as const) {
      const r = await runMonitor(t, [...hookArgs(out), '--notify', join(dir, via, 'notify.sock')]);
      assert.equal(readFileSync(out, 'utf8'), 'exit 3\n', via);
      assert.equal(r.stderr, `svirt-monitor: cannot tell svirt serve (${why}); running the hook\n`);
      rmSync(out);
    }
    assert.deepEqual(srv.lines, [], 'nothing was sent through a link');
  });

  it(
    'does not believe a server of another uid',
    { skip: isRoot() ? false : 'running a server as nobody needs root' },
    async (t) => {
      const dir = tempDir(t, 'svirt-notify-');
      chmodSync(dir, 0o777);
      const sock = join(dir, 'notify.sock');
      const script = `require('net').createServer((s) => s.on('data', () => s.end('done\\n'))).listen(${JSON.stringify(sock)}, () => { require('fs').chmodSync(${JSON.stringify(sock)}, 0o666); console.log('ready'); })`;
      const srv: ChildProcess = spawn(
        'setpriv',
        ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
          cwd: '/',
        },
      );
      t.after(() => killQuietly(srv.pid));
      let said = '';
      srv.stdout?.on('data', (d: Buffer) => (said += d.toString()));
      assert.ok(await waitFor(() => said.includes('ready'), 10_000), 'the server of nobody listens');
      const out = join(dir, 'hook.out');
      const r = await runMonitor(t, [...hookArgs(out), '--notify', sock]);
      assert.equal(readFileSync(out, 'utf8'), 'exit 3\n');
      assert.match(r.stderr, /cannot tell svirt serve \(its peer is not svirt's user\); running the hook/);
    },
  );

  it('its backup tells the server when the monitor was killed first ("unknown" status)', async (t) => {
    const dir = tempDir(t, 'svirt-notify-');
    const sock = join(dir, 'notify.sock');
    const srv = await notifyServer(t, sock, 'done\n');
    const out = join(dir, 'hook.out');
    const m = spawn(svirtMonitorPath(), [...hookArgs(out), '--notify', sock, '--', '/bin/sleep', '60'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.after(() => killQuietly(m.pid));
    let stdout = '';
    let stderr = '';
    m.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    m.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    assert.ok(await waitFor(() => /^pid \d+\n/.test(stdout), 10_000));
    const child = childPid(stdout);
    t.after(() => killQuietly(child));
    const closed = new Promise<void>((resolve) => m.once('close', () => resolve()));
    killQuietly(m.pid); // the monitor first; its backup (which shares its stderr) watches on
    await new Promise((r) => setTimeout(r, 100));
    process.kill(child, 'SIGKILL');
    await closed; // stderr closes when the backup, its last holder, is gone
    assert.deepEqual(srv.lines, [`exited ${child} unknown\n`]);
    assert.equal(existsSync(out), false, 'the hook did not run');
    assert.equal(stderr, 'svirt-monitor: the monitor was gone when QEMU exited; its backup finishes\n');
  });

  it('refuses a bad --notify', () => {
    for (const bad of [
      ['--notify', 'relative.sock'],
      ['--notify', '/tmp/dir/'],
      ['--notify', `/tmp/${'x'.repeat(65)}`],
      ['--notify', '/tmp/a.sock', '--notify', '/tmp/b.sock'],
    ]) {
      const r = spawnSync(svirtMonitorPath(), [...bad, '--', '/bin/true'], { encoding: 'utf8' });
      assert.equal(r.status, 2, bad.join(' '));
      assert.match(r.stderr, /--notify wants one absolute socket path/);
    }
  });
});
