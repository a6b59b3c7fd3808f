import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAlive, processStartTime } from './proc.js';
import { childSocket, spawnProgram } from './spawn.js';

/** Spawns and waits for the exit status (a timer keeps the loop alive: a child does not). */
function run(path: string, args: string[], fds: (number | 'ignore')[], env: NodeJS.ProcessEnv = {}, detached = false) {
  return new Promise<{ pid: number; status: string }>((resolve, reject) => {
    const keep = setTimeout(() => reject(new Error(`${path} did not exit within 10 s`)), 10_000);
    const pid = spawnProgram(path, {
      args,
      env,
      fds,
      detached,
      onExit: (status) => {
        clearTimeout(keep);
        resolve({ pid, status });
      },
    });
  });
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'svirt-spawn-'));
}

describe('spawnProgram (posix_spawn, reaped by the addon)', () => {
  it('gives the child exactly the fds asked for, in order, and /dev/null for ignore', async () => {
    const dir = tmp();
    try {
      const out = openSync(join(dir, 'out'), 'w');
      const extra = openSync(join(dir, 'extra'), 'w');
      const script =
        'readlink /proc/self/fd/0 /proc/self/fd/3; for f in 4 5 6 7 8 9 10 11 12; do [ -e /proc/self/fd/$f ] && echo has $f; done; true';
      const r = await run('/bin/sh', ['-c', script], ['ignore', out, out, extra]);
      for (const fd of [out, extra]) closeSync(fd);
      assert.equal(r.status, 'exit 0');
      assert.deepEqual(readFileSync(join(dir, 'out'), 'utf8').trim().split('\n'), ['/dev/null', join(dir, 'extra')]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('passes the environment given and no other; a detached child leads a session of its own', async () => {
    const dir = tmp();
    try {
      const out = openSync(join(dir, 'out'), 'w');
      const r = await run(
        '/bin/sh',
        ['-c', 'env; echo sid=$(ps -o sid= -p $$) pid=$$'],
        ['ignore', out, out],
        { ONLY: 'this' },
        true,
      );
      closeSync(out);
      assert.equal(r.status, 'exit 0');
      const text = readFileSync(join(dir, 'out'), 'utf8');
      assert.match(text, /^ONLY=this$/m);
      assert.doesNotMatch(text, /^HOME=/m);
      const m = /sid=\s*(\d+) pid=(\d+)/.exec(text);
      assert.ok(m, text);
      assert.equal(m[1], m[2]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports exit codes and signals, resets signals svirt ignores, and reaps the child', async () => {
    assert.equal((await run('/bin/sh', ['-c', 'exit 7'], [])).status, 'exit 7');
    // Node ignores SIGPIPE; a child must get the default action back (killed by it)
    const piped = await run('/bin/sh', ['-c', 'kill -PIPE $$; sleep 5'], []);
    assert.equal(piped.status, 'signal SIGPIPE');
    const r = await run('/bin/sh', ['-c', 'exit 0'], []);
    // reaped: no zombie left with this pid (a zombie still has a /proc entry with state Z)
    let state = '';
    try {
      state = readFileSync(`/proc/${r.pid}/stat`, 'utf8');
    } catch {
      state = '';
    }
    assert.ok(state === '' || !/\) Z /.test(state), `pid ${r.pid} is a zombie: ${state}`);
  });

  it('throws at once, leaving nothing, when the program cannot run', () => {
    assert.throws(
      () => spawnProgram('/nonexistent/svirt-no-such-program', { args: [], env: {}, fds: [] }),
      (err: Error & { code?: string }) => err.code === 'ENOENT' && /svirt-no-such-program/.test(err.message),
    );
    assert.throws(() => spawnProgram('/bin/true', { args: [], env: {}, fds: [9999] }), /EBADF|Bad file/);
  });

  it('does not keep the event loop alive, and the running child survives a process that exits', () => {
    const script = `
      const { spawnProgram } = await import(${JSON.stringify(new URL('./spawn.js', import.meta.url).href)});
      const pid = spawnProgram('/bin/sleep', { args: ['30'], env: {}, fds: [], detached: true, onExit: () => console.log('never') });
      console.log(pid);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 0, r.stderr);
    const pid = Number(r.stdout.trim());
    assert.ok(pid > 0, r.stdout);
    const start = processStartTime(pid);
    assert.ok(start !== undefined && isAlive({ pid, startTime: start }), 'the child outlived its parent');
    process.kill(pid, 'SIGKILL');
  });

  /** Runs a shell script with `input` fed on its fd 3; its exit status and what it wrote on fd 1. */
  async function filter(script: string, input: string): Promise<{ status: string; text: string }> {
    const inSock = childSocket();
    const outSock = childSocket();
    const done = run('/bin/sh', ['-c', script], ['ignore', outSock.child, 'ignore', inSock.child]);
    inSock.spawned();
    outSock.spawned();
    inSock.feed(input);
    let text = '';
    await new Promise<void>((resolve, reject) => {
      const lines = outSock.lines({
        onLine: (line) => (text += `${line}\n`),
        onEnd: (err) => {
          lines.close();
          if (err) reject(err);
          else resolve();
        },
        maxLine: 1024,
        tooLong: () => new Error('a line longer than 1024 bytes'),
      });
    });
    return { status: (await done).status, text };
  }

  it('feeds a child its input over a socketpair and reads its output as lines', async () => {
    assert.deepEqual(await filter('tr a-z A-Z <&3', 'hello from svirt\n'), { status: 'exit 0', text: 'HELLO FROM SVIRT\n' });
  });

  it('feeds input larger than the socket takes at once: the rest goes through a stream, every byte arrives', async () => {
    const big = 'x'.repeat(4 * 1024 * 1024); // far past a socketpair's buffer (about 200 kB by default)
    const { status, text } = await filter('wc -c <&3', big);
    assert.equal(status, 'exit 0');
    assert.equal(text.trim(), String(big.length));
  });
});
