import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAlive, processStartTime } from './proc.js';

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
