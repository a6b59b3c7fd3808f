import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
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
import { MessageStatus, Proc, STRING_MAX } from '../../src/remote/protocol.js';
import { PidsCgroup, pidsCgroupSkip } from '../support/pids-cgroup.js';
import { callFrame, RawClient } from './raw-client.js';
import { startServer } from './support.js';

const skip = qemuAsRootSkip() || pidsCgroupSkip();
const ORIGINAL = { uid: 1000, gid: 1000, mode: 0o644 };
const STACK = ['--security-driver', 'dac,landlock'];

const notifyPath = (dir: string): string => join(dir, 'run', 'monitor', 'notify.sock');

/** True once the process is gone or a zombie (this container's init reaps no orphan). */
function gone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`).length === 0;
  } catch {
    return true;
  }
}

interface Frozen {
  readonly img: string;
  readonly qemu: number;
  readonly monitor: number;
  readonly cg: PidsCgroup;
}

/**
 * Defines and starts a paused guest from inside a pids cgroup (so its monitor, the monitor's
 * backup and QEMU are in it), then forbids every fork there: the monitor's Node hook can no
 * longer run, so a cleanup that still happens was done by someone else.
 */
async function startFrozen(t: TestContext, dir: string, name: string): Promise<Frozen> {
  const img = makeImage(join(dir, `${name}.img`), 4, ORIGINAL, ORIGINAL.mode);
  await svirtOk(dir, [...STACK, 'define', writeDomain(dir, name, domainXml(name, [{ path: img, dev: 'vda' }]))]);
  const cg = PidsCgroup.make(t);
  const r = await cg.svirt(dir, [...STACK, 'start', name, '--paused']);
  assert.equal(r.code, 0, r.stderr);
  const rec = readRunning(dir).find((x) => x.name === name);
  assert.ok(rec?.pid && rec.monitorPid, 'a running record with QEMU and its monitor');
  const inside = cg.pids();
  assert.ok(inside.includes(rec.monitorPid) && inside.includes(rec.pid), `monitor and QEMU in the cgroup (${inside.join(' ')})`);
  assert.ok(inside.length >= 3, 'the monitor, its backup and QEMU');
  assert.notEqual(owner(img).uid, ORIGINAL.uid, 'the image belongs to the guest while it runs');
  cg.forbidForks();
  return { img, qemu: rec.pid, monitor: rec.monitorPid, cg };
}

/** Waits until the guest's record is gone and its image has its owner back; the time it took. */
async function cleanedUp(dir: string, img: string, ms = 10_000, serveLog?: () => string): Promise<number> {
  const t0 = performance.now();
  const ok = await waitFor(() => readRunning(dir).length === 0 && owner(img).uid === ORIGINAL.uid, ms, 5);
  const log = serveLog ? `; the logs:\n${serveLog()}` : '';
  assert.ok(ok, `not cleaned up within ${ms} ms: ${JSON.stringify(readRunning(dir).map((r) => [r.name, r.state]))}${log}`);
  return performance.now() - t0;
}

const guestLog = (dir: string, name: string): string => readFileSync(join(dir, 'log', `${name}.log`), 'utf8');

/** Root's libvirt client: ConnectOpen + ConnectGetType answered on the read-write socket. */
async function serveAnswers(socket: string): Promise<void> {
  const c = await RawClient.open(socket);
  try {
    const open = callFrame(Proc.ConnectOpen, 1, (w) => w.optional('qemu:///system', (x, v) => x.string(v, STRING_MAX)).uint(0));
    assert.equal((await c.call(open, 1, 5000)).header.status, MessageStatus.OK);
    assert.equal((await c.call(callFrame(Proc.ConnectGetType, 2), 2, 5000)).header.status, MessageStatus.OK);
  } finally {
    c.close();
  }
}

/**
 * Hostile clients of the notify socket in a process of their own, each reconnecting 10 ms
 * after serve closes it: `silent` connect and never send, `endless` send a line that never
 * ends, `line` send a valid notification. On SIGTERM they print what they saw.
 */
const HOSTILE = `
const net = require('net');
const [path, mode, n] = JSON.parse(process.argv[1]);
const seen = { opened: 0, closed: 0, answered: 0, refused: 0 };
let stop = false;
function one() {
  if (stop) return;
  const s = net.connect(path);
  s.on('connect', () => {
    seen.opened++;
    if (mode === 'line') s.write('exited 1 exit 0\\n');
    if (mode === 'endless') {
      const chunk = Buffer.alloc(4096, 0x78);
      const pump = () => { while (!stop && !s.destroyed && s.write(chunk)); };
      s.on('drain', pump);
      pump();
    }
  });
  s.on('data', () => seen.answered++);
  s.on('error', () => seen.refused++);
  s.on('close', () => { seen.closed++; setTimeout(one, 10); });
}
for (let i = 0; i < n; i++) one();
setTimeout(() => process.stdout.write('ready\\n'), 200);
process.on('SIGTERM', () => { stop = true; process.stdout.write(JSON.stringify(seen) + '\\n'); process.exit(0); });
`;

interface Seen {
  readonly opened: number;
  readonly closed: number;
  readonly answered: number;
  readonly refused: number;
}

class Hostile {
  private out = '';
  private readonly exited: Promise<void>;

  constructor(
    t: TestContext,
    readonly child: ChildProcess,
  ) {
    child.stdout?.on('data', (d: Buffer) => (this.out += d.toString()));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
  }

  static start(t: TestContext, path: string, mode: 'silent' | 'endless' | 'line', n: number, asNobody = false): Hostile {
    const node = [process.execPath, '-e', HOSTILE, JSON.stringify([path, mode, n])];
    // nobody, with CAP_DAC_OVERRIDE only so that it reaches the socket in the root-only dir:
    // what it meets is serve's own check of the peer's uid.
    const argv = asNobody
      ? [
          'setpriv',
          '--reuid=65534',
          '--regid=65534',
          '--clear-groups',
          '--inh-caps=-all,+dac_override',
          '--ambient-caps=-all,+dac_override',
          ...node,
        ]
      : node;
    const [cmd, ...args] = argv as [string, ...string[]];
    return new Hostile(t, spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], cwd: '/' }));
  }

  async ready(): Promise<void> {
    assert.ok(await waitFor(() => this.out.includes('ready'), 10_000), 'the hostile clients started');
  }

  async stop(): Promise<Seen> {
    this.child.kill('SIGTERM');
    await this.exited;
    const line = this.out.split('\n').find((l) => l.startsWith('{'));
    assert.ok(line, `no report from the hostile clients: ${this.out}`);
    return JSON.parse(line) as Seen;
  }
}

describe('svirt serve cleans up after a QEMU that exits by itself (svirt-monitor --notify)', { skip, timeout: 300_000 }, () => {
  it('with serve running: cleaned up while the monitor cannot even fork its Node hook', async (t) => {
    const dir = scratch(t);
    const srv = await startServer(t, dir);
    const g = await startFrozen(t, dir, 'n1');
    process.kill(g.qemu, 'SIGKILL'); // from outside, as a crash would
    const ms = await cleanedUp(dir, g.img);
    t.diagnostic(`record gone and owner back ${ms.toFixed(1)} ms after the SIGKILL was sent (polled)`);
    assert.deepEqual(owner(g.img), ORIGINAL);
    assert.ok(await waitFor(() => gone(g.monitor), 10_000), 'the monitor ends once serve answered');
    assert.equal(g.cg.refusedForks(), 0, 'the monitor never tried to fork the hook');
    assert.doesNotMatch(guestLog(dir, 'n1'), /svirt-monitor:/, 'no complaint of the monitor in the guest log');
    assert.equal(srv.child.exitCode, null);
  });

  it('with serve not running: the hook cleans up, as before', async (t) => {
    const dir = scratch(t);
    const img = makeImage(join(dir, 'h.img'), 4, ORIGINAL, ORIGINAL.mode);
    await svirtOk(dir, [...STACK, 'define', writeDomain(dir, 'h', domainXml('h', [{ path: img, dev: 'vda' }]))]);
    // A socket left by a serve that died: nothing accepts there.
    const stale = await startServer(t, dir, 'none');
    process.kill(stale.pid, 'SIGKILL');
    await waitFor(() => stale.child.exitCode !== null || stale.child.signalCode !== null, 5000);
    assert.ok(lstatSync(notifyPath(dir)).isSocket(), 'the dead serve left its socket');
    await svirtOk(dir, [...STACK, 'start', 'h', '--paused']);
    const rec = readRunning(dir)[0];
    assert.ok(rec?.pid);
    process.kill(rec.pid, 'SIGKILL');
    await cleanedUp(dir, img, 20_000);
    assert.deepEqual(owner(img), ORIGINAL);
    assert.doesNotMatch(guestLog(dir, 'h'), /svirt-monitor:/, 'a refused connection is the usual case: nothing logged');
  });

  it('the monitor killed first: its backup tells serve, still without a Node start', async (t) => {
    const dir = scratch(t);
    const srv = await startServer(t, dir, 'dac,landlock', ['--debug']);
    const g = await startFrozen(t, dir, 'b1');
    process.kill(g.monitor, 'SIGKILL'); // the monitor svirt started, by its pid
    assert.ok(await waitFor(() => gone(g.monitor), 5000));
    process.kill(g.qemu, 'SIGKILL');
    // Failed once in CI (session 17, not reproduced in 7 runs here): the logs say why next time.
    await cleanedUp(dir, g.img, 10_000, () => `serve:\n${srv.stderr()}\nb1.log:\n${guestLog(dir, 'b1')}`);
    assert.deepEqual(owner(g.img), ORIGINAL);
    assert.ok(await waitFor(() => g.cg.pids().every(gone), 10_000), 'the backup ends once serve answered');
    assert.equal(g.cg.refusedForks(), 0, 'the backup never tried to fork the hook');
    const log = guestLog(dir, 'b1');
    assert.match(log, /the monitor was gone when QEMU exited; its backup finishes/);
    assert.doesNotMatch(log, /did not confirm|cannot tell|cannot fork/);
  });

  it("hostile peers (another uid, an endless line, a crowd of silent clients) neither stall serve nor block a monitor's notification", async (t) => {
    const dir = scratch(t);
    const srv = await startServer(t, dir);
    const path = notifyPath(dir);
    const g = await startFrozen(t, dir, 'x1');
    const stranger = Hostile.start(t, path, 'line', 4, true);
    const endless = Hostile.start(t, path, 'endless', 2);
    const crowd = Hostile.start(t, path, 'silent', 150); // more than serve holds (64)
    await Promise.all([stranger.ready(), endless.ready(), crowd.ready()]);
    await new Promise((r) => setTimeout(r, 1500)); // past serve's 1 s read timeout: silent ones are closed and come back

    process.kill(g.qemu, 'SIGKILL');
    const ms = await cleanedUp(dir, g.img);
    t.diagnostic(`cleaned up ${ms.toFixed(1)} ms after the SIGKILL, under attack`);
    assert.equal(g.cg.refusedForks(), 0, 'the notification got through: no hook was tried');
    await serveAnswers(srv.socket);

    const s = await stranger.stop();
    const e = await endless.stop();
    const c = await crowd.stop();
    t.diagnostic(`another uid ${JSON.stringify(s)}; endless ${JSON.stringify(e)}; silent ${JSON.stringify(c)}`);
    assert.equal(s.answered, 0, 'a peer of another uid gets no answer');
    assert.ok(s.opened > 4 && s.closed >= s.opened - 4, 'and is closed at once (4 may be connecting when the report is made)');
    assert.equal(e.answered, 0);
    assert.ok(e.closed >= 2, 'a line that never ends is cut');
    assert.equal(c.answered, 0);
    assert.ok(c.closed >= 150, `silent clients are closed (${c.closed})`);
    assert.equal(srv.child.exitCode, null, 'serve is still up');
    assert.match(srv.stderr(), /notify socket: closed unanswered: \d+ of another uid/);
    assert.doesNotMatch(guestLog(dir, 'x1'), /svirt-monitor:/);
  });

  it('one serve per state dir: a live socket refuses a second serve, a stale one is replaced, exit removes it; symlinks and strangers in the way refuse', async (t) => {
    const dir = scratch(t);
    const first = await startServer(t, dir, 'none');
    const st = lstatSync(notifyPath(dir));
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'run', 'monitor')).mode & 0o777, 0o700);

    const second = await svirt(dir, ['--security-driver', 'none', 'serve', '--socket', join(dir, 'other-sock')]);
    assert.notEqual(second.code, 0);
    assert.match(
      second.stderr,
      new RegExp(
        `^error: another svirt serve \\(pid ${first.pid}\\) serves this state dir: its monitors' socket ".*notify\\.sock" is live`,
        'm',
      ),
    );

    process.kill(first.pid, 'SIGKILL'); // leaves a stale socket
    await waitFor(() => first.child.signalCode !== null, 5000);
    assert.ok(lstatSync(notifyPath(dir)).isSocket(), 'the dead serve left its socket');
    const again = await startServer(t, dir, 'none'); // the stale socket is replaced
    assert.equal(await again.stop(), 0, again.stderr());
    assert.throws(() => lstatSync(notifyPath(dir)), /ENOENT/, 'serve removes its socket at exit');

    // A file that is not a socket in its place is not removed.
    writeFileSync(notifyPath(dir), 'x');
    const blocked = await svirt(dir, ['--security-driver', 'none', 'serve', '--socket', join(dir, 'sock')]);
    assert.match(blocked.stderr, /cannot listen for the monitors on ".*notify\.sock": it exists and is not a socket/);
    assert.equal(readFileSync(notifyPath(dir), 'utf8'), 'x');
    rmSync(notifyPath(dir));

    // The monitor dir swapped for a symlink: refused, nothing created where it points.
    const elsewhere = join(dir, 'elsewhere');
    mkdirSync(elsewhere, { mode: 0o700 });
    renameSync(join(dir, 'run', 'monitor'), join(dir, 'run', 'monitor.real'));
    symlinkSync(elsewhere, join(dir, 'run', 'monitor'));
    const linked = await svirt(dir, ['--security-driver', 'none', 'serve', '--socket', join(dir, 'sock')]);
    assert.match(
      linked.stderr,
      /cannot listen for the monitors in ".*monitor": (it is a symbolic link|a symbolic link is on the way)/,
    );
    assert.throws(() => lstatSync(join(elsewhere, 'notify.sock')), /ENOENT/);

    // A monitor dir others may enter is refused too.
    rmSync(join(dir, 'run', 'monitor'));
    renameSync(join(dir, 'run', 'monitor.real'), join(dir, 'run', 'monitor'));
    chmodSync(join(dir, 'run', 'monitor'), 0o755);
    const open = await svirt(dir, ['--security-driver', 'none', 'serve', '--socket', join(dir, 'sock')]);
    assert.match(
      open.stderr,
      /cannot listen for the monitors on ".*notify\.sock": ".*monitor" must be a directory of uid 0 only it can use \(it is uid 0, mode 0755\)/,
    );
  });
});
