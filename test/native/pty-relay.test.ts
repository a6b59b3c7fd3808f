/**
 * openPty (the addon) and svirt-monitor's --relay, on the real kernel's devpts: the pty svirt
 * allocates is the /dev/pts/N it names, raw both ways; the monitor relays it to a socket,
 * drops output while nobody has the slave open, and stays idle while the master hangs up.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, constants, fstatSync, openSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { openPty, socketpair, svirtMonitorPath } from '../../src/host/native.js';

type Cleanup = { after(fn: () => void): void };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Reads a non-blocking fd until `want` shows up (bounded in time); returns what came. */
async function readUntil(fd: number, want: string, ms = 5000): Promise<string> {
  const buf = Buffer.alloc(4096);
  let text = '';
  for (const end = Date.now() + ms; Date.now() < end && !text.includes(want);) {
    try {
      const n = readSync(fd, buf);
      if (n > 0) text += buf.toString('latin1', 0, n);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      await sleep(10);
    }
  }
  return text;
}

function fdFlags(fd: number): number {
  return parseInt(/^flags:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1] ?? '0', 8);
}

/** utime + stime of a process, in clock ticks. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** A socket end wrapped for events; collects what it reads. */
function watch(fd: number): { sock: Socket; text: () => string; ended: Promise<void> } {
  const sock = new Socket({ fd, readable: true, writable: true });
  let text = '';
  sock.on('data', (d: Buffer) => (text += d.toString('latin1')));
  const ended = new Promise<void>((resolve) => sock.once('end', () => resolve()));
  return { sock, text: () => text, ended };
}

async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) if (cond()) return true;
  return cond();
}

function startRelay(t: Cleanup): { monitor: ChildProcess; q: ReturnType<typeof watch>; path: string; pid: Promise<number> } {
  const pty = openPty();
  closeSync(pty.slave); // as svirt leaves it: labelled, then closed (the master hangs up)
  const [mine, theirs] = socketpair();
  const monitor = spawn(svirtMonitorPath(), ['--relay', '3,4', '--', '/bin/sleep', '60'], {
    stdio: ['ignore', 'pipe', 'inherit', pty.master, theirs],
  });
  closeSync(pty.master);
  closeSync(theirs);
  t.after(() => {
    monitor.kill('SIGKILL'); // a no-op once it exited, even reaped before its exit event ran (ESRCH)
  });
  const pid = new Promise<number>((resolve) => {
    let out = '';
    monitor.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /pid (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
  });
  return { monitor, q: watch(mine), path: `/dev/pts/${pty.index}`, pid };
}

describe('openPty', () => {
  it('allocates a raw pty whose /dev/pts/N is its slave; both ends close-on-exec, non-blocking', async () => {
    const p = openPty();
    try {
      const st = fstatSync(p.slave);
      const named = statSync(`/dev/pts/${p.index}`);
      assert.ok(st.isCharacterDevice());
      assert.equal(named.ino, st.ino, `/dev/pts/${p.index} is the slave`);
      assert.equal(named.rdev, st.rdev);
      for (const fd of [p.master, p.slave]) {
        assert.ok(fdFlags(fd) & 0o2000000, 'O_CLOEXEC');
        assert.ok(fdFlags(fd) & constants.O_NONBLOCK, 'O_NONBLOCK');
      }
      writeSync(p.master, 'a\rb\n');
      assert.equal(await readUntil(p.slave, 'b\n'), 'a\rb\n', 'no line discipline on the way in (raw)');
      writeSync(p.slave, 'x\n');
      assert.equal(await readUntil(p.master, 'x\n'), 'x\n', 'no echo, no \\r added on the way out (raw)');
    } finally {
      closeSync(p.slave);
      closeSync(p.master);
    }
  });
});

describe('svirt-monitor --relay', () => {
  it('relays a pty both ways, drops output nobody reads, idles while the master hangs up, ends with the child', async (t) => {
    const { monitor, q, path, pid: childPid } = startRelay(t);
    const child = await childPid;
    const monitorPid = monitor.pid ?? 0;
    q.sock.write('lost-before-anyone-reads\n');
    await sleep(400);

    const slave = openSync(path, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
    try {
      await sleep(400); // the monitor looks for a reader every 250 ms
      q.sock.write('hello\n');
      const got = await readUntil(slave, 'hello\n');
      assert.equal(got, 'hello\n', 'output reaches the reader, and what came before it was dropped');
      writeSync(slave, 'typed\n');
      assert.ok(await until(() => q.text().includes('typed\n')), `input reaches QEMU's socket: ${JSON.stringify(q.text())}`);
    } finally {
      closeSync(slave);
    }

    // the reader left: the master hangs up, and the monitor must not spin on it
    q.sock.write('into-the-void\n');
    await sleep(500);
    const before = cpuTicks(monitorPid);
    await sleep(1500);
    const used = cpuTicks(monitorPid) - before;
    assert.ok(used <= 5, `the monitor idles with nobody on the pty (${used} ticks in 1.5 s)`);

    // a second reader is served again
    const again = openSync(path, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
    try {
      await sleep(400);
      q.sock.write('second\n');
      assert.equal(await readUntil(again, 'second\n'), 'second\n');
    } finally {
      closeSync(again);
    }

    process.kill(child, 'SIGKILL');
    const ended = await Promise.race([q.ended.then(() => true), sleep(5000).then(() => false)]);
    assert.ok(ended, "the relay closes QEMU's socket when the child ends");
    q.sock.destroy();
  });

  it('refuses a malformed --relay (exit 2, nothing started)', () => {
    for (const bad of ['1,2', '3', '3,3', '3,x', '9,10']) {
      const r = spawnSync(svirtMonitorPath(), ['--relay', bad, '--', '/bin/true'], { encoding: 'utf8' });
      assert.equal(r.status, 2, `--relay ${bad}: ${r.stderr}`);
      assert.match(r.stderr, /--relay wants PTY,SOCK/);
      assert.equal(r.stdout, '', 'no child was started');
    }
  });
});
