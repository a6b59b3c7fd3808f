import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { cutShort, runProgram } from './run-program.js';

const SH = '/bin/sh';
const opts = { env: { PATH: '/usr/bin:/bin' }, timeoutMs: 10_000, maxOutput: 1 << 20 };
const openFds = (): number => readdirSync('/proc/self/fd').length;

describe('runProgram (a host program off the event loop)', () => {
  it('returns the exit status, stdout and stderr apart, and what stdin was given', async () => {
    const r = await runProgram(SH, ['-c', 'cat; echo err >&2; exit 3'], { ...opts, input: 'line one\nline two' });
    assert.deepEqual(r, { status: 3, signal: null, stdout: 'line one\nline two', stderr: 'err\n', timedOut: false });
    assert.equal(cutShort(r, opts), undefined, 'it ended by itself');
    const quiet = await runProgram(SH, ['-c', 'cat; echo done'], opts);
    assert.equal(quiet.stdout, 'done\n', 'without input, stdin is /dev/null: cat ends at once');
  });

  it("gives the program pipes, not sockets (SELinux hands a program that changes domain /dev/null for the manager's sockets)", async () => {
    const r = await runProgram(SH, ['-c', 'readlink /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2 >&2'], {
      ...opts,
      input: '',
    });
    const kinds = r.stderr.trim().split('\n');
    assert.equal(kinds.length, 3, r.stderr);
    for (const k of kinds) assert.match(k, /^pipe:\[\d+\]$/);
    const big = 'x'.repeat(1 << 20); // more than a pipe holds: written as the program reads it
    const copied = await runProgram('/usr/bin/wc', ['-c'], { ...opts, input: big });
    assert.equal(copied.stdout.trim(), String(big.length));
  });

  it('leaves the event loop free while the program runs', async () => {
    let ticks = 0;
    const tick = setInterval(() => ticks++, 10);
    const started = Date.now();
    try {
      const r = await runProgram(SH, ['-c', 'sleep 0.4; echo slept'], opts);
      assert.equal(r.stdout, 'slept\n');
    } finally {
      clearInterval(tick);
    }
    assert.ok(Date.now() - started >= 350);
    // spawnSync would have let none run; a loop this free runs ~40
    assert.ok(ticks >= 10, `the 10 ms timer ran ${ticks} times in 0.4 s`);
  });

  it('kills a program past its timeout, and does not wait for a grandchild holding its output', async () => {
    const started = Date.now();
    const hung = await runProgram(SH, ['-c', 'echo before; exec sleep 30'], { ...opts, timeoutMs: 200 });
    assert.equal(hung.timedOut, true);
    assert.equal(hung.signal, 'SIGKILL');
    assert.equal(hung.stdout, 'before\n');
    assert.equal(cutShort(hung, { ...opts, timeoutMs: 200 }), 'no end after 0.2 s');
    const held = await runProgram(SH, ['-c', 'sleep 30 & echo $!'], { ...opts, timeoutMs: 300 });
    const grandchild = Number(held.stdout.trim());
    assert.ok(grandchild > 1, held.stdout);
    process.kill(grandchild, 'SIGKILL'); // the sleep this test made
    assert.equal(held.status, 0, 'the program itself ended well');
    assert.equal(cutShort(held, { ...opts, timeoutMs: 300 }), 'no end after 0.3 s', 'but its streams were given up');
    assert.ok(Date.now() - started < 5_000, `both returned within their timeouts (${Date.now() - started} ms)`);
  });

  it('kills a program that prints more than its bound, keeping no more than the bound', async () => {
    const r = await runProgram('/usr/bin/yes', [], { ...opts, maxOutput: 64 * 1024 });
    assert.equal(r.overflow, 'stdout');
    assert.equal(cutShort(r, { ...opts, maxOutput: 64 * 1024 }), 'more than 65536 bytes on its stdout');
    assert.equal(r.signal, 'SIGKILL');
    assert.ok(r.stdout.length <= 64 * 1024, `${r.stdout.length} bytes kept`);
  });

  it('rejects a program that cannot run, with its errno, and leaves no fd open', async () => {
    const before = openFds();
    await assert.rejects(runProgram('/nonexistent/program', [], { ...opts, input: 'x' }), { code: 'ENOENT' });
    for (let i = 0; i < 5; i++) await runProgram(SH, ['-c', 'echo $i'], { ...opts, input: 'x' });
    assert.equal(openFds(), before);
  });
});
