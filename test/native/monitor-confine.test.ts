/**
 * svirt-monitor --spec-fd: the monitor's child applies the confinement spec itself (svirt-exec's
 * steps, native/confine.c) and execs the program: the way every QEMU starts, one exec fewer
 * than `svirt-monitor -- svirt-exec --spec-fd N -- QEMU`. svirt-exec.test.ts covers each step
 * in depth; these check that the monitor's child runs them all, reports their failures as
 * svirt-exec does, and that the monitor itself stays as it was (unconfined, no spec fd).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { svirtMonitorPath } from '../../src/host/native.js';
import type { ConfinementSpec } from '../../src/security/confinement.js';
import { fsRightsForAbi, LATEST_ABI } from '../../src/security/landlock/abi.js';
import { killQuietly, tempDir } from '../helpers.js';
import { SYSTEM_RULES, twoOpenFds } from './fixtures.js';

type Cleanup = { after(fn: () => void): void };

const isRoot = process.getuid?.() === 0;

function spec(extra: Partial<ConfinementSpec> = {}): ConfinementSpec {
  return { version: 1, rlimits: [], noNewPrivs: true, keepFds: [], ...extra };
}

/** The spec (object or raw text) in a file, opened for the monitor's fd 3. */
function specFd(t: Cleanup, s: ConfinementSpec | string): number {
  const file = join(tempDir(t, 'svirt-monconf-'), 'spec.json');
  writeFileSync(file, typeof s === 'string' ? s : JSON.stringify(s));
  const fd = openSync(file, 'r');
  t.after(() => closeSync(fd));
  return fd;
}

interface Run {
  /** The monitor's own exit status. */
  readonly status: number | null;
  /** Its status channel: "pid N\nexit S\n". */
  readonly channel: string;
  /** The child's stdout and stderr (the monitor points the child's fd 1 at its fd 2), and the monitor's. */
  readonly log: string;
}

function runMonitor(t: Cleanup, s: ConfinementSpec | string, argv: readonly string[], extraFds: readonly number[] = []): Run {
  const r = spawnSync(svirtMonitorPath(), ['--spec-fd', '3', '--', ...argv], {
    stdio: ['ignore', 'pipe', 'pipe', specFd(t, s), ...extraFds],
    encoding: 'utf8',
    cwd: '/',
    timeout: 20_000,
  });
  if (r.error) throw r.error;
  return { status: r.status, channel: r.stdout, log: r.stderr };
}

/** The child's exit as the monitor reported it. */
function childExit(r: Run): number {
  const m = /^pid \d+\nexit (\d+)\n$/.exec(r.channel);
  assert.ok(m, `status channel: ${JSON.stringify(r.channel)}; log: ${r.log}`);
  return Number(m[1]);
}

describe('svirt-monitor --spec-fd (the child confines itself, then execs)', () => {
  it(
    'applies ids, groups, no_new_privs and rlimits, and keeps only the listed fds (the spec fd is gone)',
    { skip: !isRoot && 'needs root to change ids' },
    (t) => {
      const [a, b] = twoOpenFds(t, 'svirt-monconf-');
      const s = spec({
        uid: 900125,
        gid: 900125,
        groups: [],
        keepFds: [4],
        rlimits: [{ resource: 'nofile', soft: 64, hard: 128 }],
      });
      // fds 4 and 5 in the monitor; 4 is kept. `true` keeps sh from exec'ing ls.
      const r = runMonitor(
        t,
        s,
        [
          '/bin/sh',
          '-c',
          'id -u; id -g; id -G; grep -E "^(NoNewPrivs|CapEff):" /proc/self/status; ulimit -n; ls /proc/$$/fd; true',
        ],
        [a, b],
      );
      assert.equal(r.status, 0, r.log);
      assert.equal(childExit(r), 0, r.log);
      assert.equal(r.log, '900125\n900125\n900125\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\n64\n0\n1\n2\n4\n');
    },
  );

  it('applies Landlock: the program reads what the spec allows and nothing else', (t) => {
    const allowed = tempDir(t, 'svirt-monconf-');
    const denied = tempDir(t, 'svirt-monconf-');
    writeFileSync(join(allowed, 'f'), 'allowed\n');
    writeFileSync(join(denied, 'f'), 'denied\n');
    const s = spec({
      landlock: {
        handledFs: fsRightsForAbi(LATEST_ABI),
        handledNet: [],
        scoped: [],
        pathRules: [...SYSTEM_RULES, { path: join(allowed, 'f'), access: ['read_file'] }],
        netRules: [],
        bestEffort: false,
        logNewExec: false,
      },
    });
    const ok = runMonitor(t, s, ['/bin/cat', join(allowed, 'f')]);
    assert.equal(childExit(ok), 0, ok.log);
    assert.equal(ok.log, 'allowed\n');
    const no = runMonitor(t, s, ['/bin/cat', join(denied, 'f')]);
    assert.equal(childExit(no), 1);
    assert.match(no.log, /Permission denied/);
  });

  for (const [what, text, status, line] of [
    ['a spec that is not JSON', '{nope', 201, /^svirt-exec: spec: .+: Invalid argument\n$/],
    [
      'rlimits it cannot set',
      JSON.stringify(spec({ rlimits: [{ resource: 'nofile', soft: 100, hard: 50 }] })),
      202,
      /^svirt-exec: rlimits: setrlimit nofile: Invalid argument\n$/,
    ],
    [
      'a kept fd that is not open',
      JSON.stringify(spec({ keepFds: [77] })),
      209,
      /^svirt-exec: fds: keep fd 77: Bad file descriptor\n$/,
    ],
  ] as const) {
    it(`fails ${what} with svirt-exec's one line and status ${status}; the program never runs`, (t) => {
      const marker = join(tempDir(t, 'svirt-monconf-'), 'marker');
      const r = runMonitor(t, text, ['/bin/sh', '-c', `touch ${marker}`]);
      assert.equal(r.status, 0, 'the monitor itself ran and reported');
      assert.equal(childExit(r), status);
      assert.match(r.log, line);
      assert.equal(existsSync(marker), false, 'the program must not run');
    });
  }

  it('fails an exec with 210', (t) => {
    const r = runMonitor(t, spec(), ['/nonexistent/qemu-system-x86_64', '-S']);
    assert.equal(childExit(r), 210);
    assert.equal(r.log, 'svirt-exec: exec: execve "/nonexistent/qemu-system-x86_64": No such file or directory\n');
  });

  it('leaves the monitor itself unconfined, without the spec fd', async (t) => {
    const s = isRoot ? spec({ uid: 900126, gid: 900126, groups: [] }) : spec();
    const monitor = spawn(svirtMonitorPath(), ['--spec-fd', '3', '--', '/bin/sleep', '60'], {
      stdio: ['ignore', 'pipe', 'inherit', specFd(t, s)],
    });
    t.after(() => killQuietly(monitor.pid));
    const first = await new Promise<string>((resolve, reject) => {
      let text = '';
      const timer = setTimeout(() => reject(new Error(`no pid line: ${JSON.stringify(text)}`)), 10_000);
      monitor.stdout?.on('data', (c: Buffer) => {
        text += c.toString();
        if (/^pid \d+\n/.test(text)) {
          clearTimeout(timer);
          resolve(text);
        }
      });
    });
    const childPid = Number(/^pid (\d+)\n/.exec(first)?.[1]);
    t.after(() => killQuietly(childPid));
    for (let i = 0; readFileSync(`/proc/${childPid}/comm`, 'utf8') !== 'sleep\n'; i++) {
      if (i > 500) assert.fail("the child never exec'd sleep");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const field = (pid: number, name: string): string =>
      new RegExp(`^${name}:\\s+(.*)$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '';
    const monitorPid = monitor.pid ?? assert.fail('no pid');
    assert.equal(field(monitorPid, 'NoNewPrivs'), '0');
    assert.equal(field(childPid, 'NoNewPrivs'), '1');
    if (isRoot) {
      assert.equal(field(monitorPid, 'Uid').split('\t')[0], '0');
      assert.equal(field(childPid, 'Uid').split('\t')[0], '900126');
    }
    assert.deepEqual(
      readdirSync(`/proc/${monitorPid}/fd`)
        .map(Number)
        .sort((x, y) => x - y),
      [0, 1, 2],
    );
    const rss = Number(field(monitorPid, 'VmRSS').split(' ')[0]);
    t.diagnostic(`svirt-monitor VmRSS ${rss} kB with the confinement linked in`);
    assert.ok(rss > 0 && rss < 2048, `VmRSS ${rss} kB`);
  });

  it('wants --spec-fd to be one open fd >= 3', (t) => {
    for (const arg of ['2', '99', 'x', '3x']) {
      const r = spawnSync(svirtMonitorPath(), ['--spec-fd', arg, '--', '/bin/true'], { encoding: 'utf8' });
      assert.equal(r.status, 2, arg);
      assert.equal(r.stderr, 'svirt-monitor: --spec-fd wants one open fd >= 3\n');
    }
    const fd = specFd(t, spec());
    const twice = spawnSync(svirtMonitorPath(), ['--spec-fd', '3', '--spec-fd', '3', '--', '/bin/true'], {
      stdio: ['ignore', 'pipe', 'pipe', fd],
      encoding: 'utf8',
    });
    assert.equal(twice.status, 2);
  });
});
