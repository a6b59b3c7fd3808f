import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { svirtMonitorPath } from '../../src/host/native.js';
import { killQuietly, tempDir } from '../helpers.js';
import { twoOpenFds } from './fixtures.js';

type Cleanup = { after(fn: () => void): void };

/** Collects a child's stdout and resolves when it matches. */
function waitForOutput(child: ChildProcess, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(
      () => reject(new Error(`timed out waiting for ${String(pattern)}; got ${JSON.stringify(text)}`)),
      10_000,
    );
    const check = (): void => {
      if (pattern.test(text)) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        resolve(text);
      }
    };
    const onData = (chunk: Buffer): void => {
      text += chunk.toString();
      check();
    };
    child.stdout?.on('data', onData);
  });
}

/** Starts a monitor whose child sleeps; returns both pids once "pid N" was printed. */
async function startSleeping(
  t: Cleanup,
  extraFds: readonly number[] = [],
): Promise<{ monitor: ChildProcess; monitorPid: number; childPid: number; output: Promise<string> }> {
  const monitor = spawn(svirtMonitorPath(), ['--', '/bin/sleep', '60'], { stdio: ['ignore', 'pipe', 'inherit', ...extraFds] });
  t.after(() => killQuietly(monitor.pid));
  const exited = new Promise<string>((resolve) => {
    let all = '';
    monitor.stdout?.on('data', (c: Buffer) => (all += c.toString()));
    monitor.once('close', () => resolve(all));
  });
  const first = await waitForOutput(monitor, /^pid (\d+)\n/);
  const childPid = Number(/^pid (\d+)\n/.exec(first)?.[1]);
  t.after(() => killQuietly(childPid));
  // "pid N" comes right after fork: wait until the child has reset its signals and exec'd
  for (let i = 0; readFileSync(`/proc/${childPid}/comm`, 'utf8') !== 'sleep\n'; i++) {
    if (i > 500) assert.fail("the child never exec'd sleep");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return { monitor, monitorPid: monitor.pid ?? assert.fail('no pid'), childPid, output: exited };
}

describe('svirt-monitor', () => {
  it('prints the pid and the exit code of the child', () => {
    const r = spawnSync(svirtMonitorPath(), ['--', '/bin/sh', '-c', 'echo "$$" >&2; exit 3'], { encoding: 'utf8' });
    assert.equal(r.status, 0);
    const m = /^pid (\d+)\nexit 3\n$/.exec(r.stdout);
    assert.ok(m, r.stdout);
    assert.equal(r.stderr, `${m[1]}\n`, 'the pid line names the child itself');
  });

  it('runs the hook with SVIRT_CHILD_PID and SVIRT_CHILD_STATUS after the child ends', (t) => {
    const out = join(tempDir(t, 'svirt-monitor-'), 'hook.out');
    const hook = [
      '/bin/sh',
      '-c',
      `echo "$SVIRT_CHILD_PID|$SVIRT_CHILD_STATUS|$0" > ${out}; read x && echo stdin-not-null >> ${out}; echo stdout-is-null`,
      'arg0',
    ];
    const r = spawnSync(svirtMonitorPath(), [...hook.flatMap((a) => ['--hook', a]), '--', '/bin/true'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const m = /^pid (\d+)\nexit 0\n$/.exec(r.stdout);
    assert.ok(m, r.stdout);
    assert.equal(readFileSync(out, 'utf8'), `${m[1]}|exit 0|arg0\n`);
  });

  it('reports "signal 9" for a child killed by SIGKILL, and the hook sees it', async (t) => {
    const out = join(tempDir(t, 'svirt-monitor-'), 'hook.out');
    const monitor = spawn(
      svirtMonitorPath(),
      ['--hook', '/bin/sh', '--hook', '-c', '--hook', `echo "$SVIRT_CHILD_STATUS" > ${out}`, '--', '/bin/sleep', '60'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    t.after(() => killQuietly(monitor.pid));
    const closed = new Promise<number | null>((resolve) => monitor.once('close', (code) => resolve(code)));
    const first = await waitForOutput(monitor, /^pid (\d+)\n/);
    const childPid = Number(/^pid (\d+)\n/.exec(first)?.[1]);
    t.after(() => killQuietly(childPid));
    const rest = waitForOutput(monitor, /signal 9\n/);
    process.kill(childPid, 'SIGKILL');
    assert.equal(await rest, 'signal 9\n');
    assert.equal(await closed, 0);
    assert.equal(readFileSync(out, 'utf8'), 'signal 9\n');
  });

  it('holds no fd >= 3 while the child keeps its fds; it is a small session leader', async (t) => {
    const [a, b] = twoOpenFds(t, 'svirt-monitor-');
    const { monitorPid, childPid, output } = await startSleeping(t, [a, b]);
    const numeric = (pid: number): number[] =>
      readdirSync(`/proc/${pid}/fd`)
        .map(Number)
        .sort((x, y) => x - y);
    assert.deepEqual(numeric(monitorPid), [0, 1, 2]);
    const childFds = numeric(childPid);
    assert.ok(childFds.includes(3) && childFds.includes(4), `child fds ${childFds.join(',')}`);

    const stat = readFileSync(`/proc/${monitorPid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    assert.equal(Number(fields[3]), monitorPid, 'session id is the monitor pid');
    const status = readFileSync(`/proc/${monitorPid}/status`, 'utf8');
    const rss = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]);
    t.diagnostic(`svirt-monitor VmRSS ${rss} kB`);
    assert.ok(rss > 0 && rss < 2048, `VmRSS ${rss} kB`);
    const ignored = BigInt(`0x${/^SigIgn:\s+([0-9a-f]+)$/m.exec(status)?.[1] ?? '0'}`);
    for (const sig of [1, 2, 13]) assert.equal((ignored >> BigInt(sig - 1)) & 1n, 1n, `signal ${sig} ignored`);
    const childIgnored = /^SigIgn:\s+([0-9a-f]+)$/m.exec(readFileSync(`/proc/${childPid}/status`, 'utf8'))?.[1];
    assert.equal(BigInt(`0x${childIgnored ?? '1'}`), 0n, 'the child starts with default dispositions');

    process.kill(childPid, 'SIGTERM');
    assert.match(await output, /\nsignal 15\n$/);
  });

  it('reports exit 127 when the child cannot be executed', () => {
    const r = spawnSync(svirtMonitorPath(), ['--', '/nonexistent/qemu'], { encoding: 'utf8' });
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^pid \d+\nexit 127\n$/);
    assert.equal(r.stderr, 'svirt-monitor: cannot execute /nonexistent/qemu: No such file or directory\n');
  });

  it('rejects a command line without --', () => {
    const r = spawnSync(svirtMonitorPath(), ['/bin/true'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^usage: svirt-monitor/);
  });
});
