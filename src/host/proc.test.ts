import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { holdProcess, isAlive, processStartTime } from './proc.js';

/** Now, in the clock ticks /proc/PID/stat counts start times in (USER_HZ, 100 on Linux). */
function ticksNow(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 100;
}

describe('processStartTime: field 22 of /proc/PID/stat', () => {
  it('reads a process whose name has spaces, parentheses and a state letter in it', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'svirt-proc-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    // comm keeps the first 15 bytes of the name: ") Z 1 2 3 (x" and more
    const prog = join(dir, ') Z 1 2 3 (x) y');
    copyFileSync('/bin/sleep', prog);
    chmodSync(prog, 0o755);
    const before = ticksNow();
    const child = spawn(prog, ['30'], { stdio: 'ignore' });
    t.after(() => child.kill('SIGKILL'));
    await new Promise((resolve, reject) => child.once('spawn', resolve).once('error', reject));
    const pid = child.pid!;
    assert.match(readFileSync(`/proc/${pid}/stat`, 'utf8'), /\(\) Z 1 2 3 \(x\) y\) /);
    const start = processStartTime(pid);
    assert.ok(start !== undefined, 'a running process has a start time');
    // Started between the two readings of the clock (a tick either side for rounding).
    assert.ok(start >= Math.floor(before) - 1 && start <= ticksNow() + 1, `start ${start} not within [${before}, now]`);
    assert.ok(isAlive({ pid, startTime: start }));
    assert.equal(isAlive({ pid, startTime: start + 1 }), false, 'another start time is another process');
  });

  it('answers undefined for a pid that does not exist', () => {
    const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
    assert.equal(processStartTime(pidMax + 1), undefined);
  });

  it('reads its own process like the kernel writes it', () => {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    assert.equal(processStartTime(process.pid), Number(fields[19]));
  });
});

describe('holdProcess: a process held by a pidfd once its identity is checked', () => {
  /** A sleep that is not this process's child (as QEMU is the monitor's): its exit is a zombie's only until sh reaps it. */
  async function sleeper(t: { after(fn: () => void): void }): Promise<{ pid: number; startTime: number }> {
    const sh = spawn('sh', ['-c', 'sleep 30 & echo $!; wait'], { stdio: ['ignore', 'pipe', 'ignore'] });
    t.after(() => sh.kill('SIGKILL'));
    const pid = Number(await new Promise<string>((resolve) => sh.stdout.once('data', (d: Buffer) => resolve(d.toString()))));
    const startTime = processStartTime(pid);
    assert.ok(startTime !== undefined);
    return { pid, startTime };
  }

  it('signals the process and sees it exit; afterwards a signal reaches nothing', async (t) => {
    const id = await sleeper(t);
    const p = holdProcess(id);
    assert.ok(p, 'held');
    t.after(() => p.close());
    assert.equal(await p.exited(50), false, 'still running: the wait times out');
    const exit = p.exited(10_000);
    assert.equal(p.signal('SIGKILL'), true);
    assert.equal(await exit, true, 'the exit is seen');
    assert.equal(isAlive(id), false);
    assert.equal(await p.exited(10_000), true, 'and seen again at once');
  });

  it('holds nothing for a start time that is not the process now at that pid', async (t) => {
    const id = await sleeper(t);
    assert.equal(holdProcess({ pid: id.pid, startTime: id.startTime - 1 }), undefined);
    assert.equal(isAlive(id), true, 'and sends it nothing');
    assert.equal(holdProcess({ pid: 2 ** 22 + 1, startTime: 1 }), undefined, 'nor for a pid with no process');
  });
});
