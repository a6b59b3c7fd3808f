/**
 * A cgroup per guest (issue 18 part 2), on this host's real kernel (a v1/v2 hybrid): the
 * guest's QEMU sits in its own cgroup under svirt's, with the definition's memory limit; its
 * pids and devices are limited (a refused thread, a refused open); the cgroup is gone after
 * destroy, after QEMU is killed, and after svirt is killed mid-start and `svirt reconcile`
 * runs. The v1 devices controller and the v2 BPF program are each proved alone as well.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { svirtMonitorPath } from '../../src/host/native.js';
import { QmpClient } from '../../src/qemu/qmp-client.js';
import { hierarchyDir, hostLayout } from '../../src/lifecycle/cgroup/layout.js';
import { applyDevicesV1, applyDevicesV2, nodeRule, type DeviceRule } from '../../src/lifecycle/cgroup/devices.js';
import {
  SVIRT_BIN,
  domainXml,
  makeImage,
  qemuAsRootSkip,
  readRunning,
  scratch,
  svirt,
  svirtOk,
  waitFor,
  writeDomain,
} from '../helpers.js';

const MEMTUNE = "\n  <memtune><hard_limit unit='MiB'>96</hard_limit></memtune>";
const STACK = ['--security-driver', 'dac']; // no Landlock: what the guest uid may open is up to DAC and the cgroup

function skip(): string | false {
  const q = qemuAsRootSkip('cgroups need root');
  if (q) return q;
  return hostLayout().kind === 'none' ? 'no cgroup file system is mounted here' : false;
}

async function guest(t: TestContext, name: string, define = true): Promise<{ dir: string; uuid: () => string }> {
  const dir = scratch(t, 'svirt-cgroup-');
  const img = makeImage(join(dir, `${name}.img`));
  const xml = domainXml(name, [{ path: img, dev: 'vda' }]).replace('<vcpu>', `${MEMTUNE.trim()}\n  <vcpu>`);
  const file = writeDomain(dir, name, xml);
  if (define) await svirtOk(dir, ['define', file]);
  return { dir, uuid: () => readRunning(dir).find((r) => r.name === name)?.uuid ?? '' };
}

/** QEMU's cgroup dirs (or one thread's), from the kernel (/proc/PID/cgroup), for the hierarchies of this host's layout. */
function cgroupOf(pid: number, tid?: string): Map<string, string> {
  const layout = hostLayout();
  const out = new Map<string, string>();
  const file = tid === undefined ? `/proc/${pid}/cgroup` : `/proc/${pid}/task/${tid}/cgroup`;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '0' && layout.v2) out.set('v2', hierarchyDir(layout.v2, m[3] ?? ''));
    for (const c of (m[2] ?? '').split(',')) {
      const h = layout.v1[c as 'memory'];
      if (h) out.set(c, hierarchyDir(h, m[3] ?? ''));
    }
  }
  return out;
}

/** Every svirt-UUID cgroup dir of this guest left anywhere under /sys/fs/cgroup (two levels deep, then svirt's own). */
function leftovers(uuid: string): string[] {
  const layout = hostLayout();
  const parents = [...Object.values(layout.v1), ...(layout.v2 ? [layout.v2] : [])].map((h) => hierarchyDir(h, h.own));
  return parents.map((p) => join(p, `svirt-${uuid}`)).filter((d) => existsSync(d));
}

function limitFile(dir: string): string {
  return existsSync(join(dir, 'memory.limit_in_bytes')) ? 'memory.limit_in_bytes' : 'memory.max';
}

describe('a cgroup per guest', { skip: skip() }, () => {
  it('QEMU sits in its own cgroup under svirt own, with hard_limit 96 MiB; dominfo shows it; destroy removes it', async (t) => {
    const g = await guest(t, 'cg-mem');
    await svirtOk(g.dir, [...STACK, 'start', 'cg-mem', '--paused']);
    const row = readRunning(g.dir)[0];
    assert.ok(row?.pid);
    const uuid = g.uuid();
    const mine = cgroupOf(process.pid); // the CLI ran from this test's cgroups
    const its = cgroupOf(row.pid);
    assert.ok(its.size > 0);
    // A memtune guest needs memory, pids (svirt's limit) and the device list: v1's controller
    // where the host has one, else cgroup2 (which on pure v2 holds everything).
    const layout = hostLayout();
    const needed = new Set(layout.kind === 'v2' ? ['v2'] : ['memory', 'pids', layout.v1.devices ? 'devices' : 'v2']);
    for (const [h, dir] of its) {
      const want = needed.has(h) ? join(mine.get(h) ?? '?', `svirt-${uuid}`) : (mine.get(h) ?? '?');
      assert.equal(
        dir,
        want,
        `${h}: ${needed.has(h) ? "QEMU's cgroup is svirt-UUID under svirt's own" : "not needed: QEMU stays in svirt's"}`,
      );
    }
    assert.ok(
      [...needed].every((h) => its.has(h)),
      `QEMU is in ${[...needed].join(', ')}`,
    );
    // QEMU's confinement joins a v1 hierarchy by moving its one thread (native/confine.c): every
    // thread QEMU has is there too, and the process is listed in each dir's cgroup.procs.
    const threads = readdirSync(`/proc/${row.pid}/task`);
    assert.ok(threads.length > 1, `QEMU runs threads (${threads.length})`);
    for (const tid of threads) assert.deepEqual(cgroupOf(row.pid, tid), its, `thread ${tid} is where QEMU is`);
    for (const h of needed) {
      const procs = readFileSync(join(its.get(h) ?? '?', 'cgroup.procs'), 'utf8').split('\n');
      assert.ok(procs.includes(String(row.pid)), `${h}: QEMU's pid is in cgroup.procs`);
    }
    const mem = its.get('memory') ?? its.get('v2') ?? '';
    assert.equal(readFileSync(join(mem, limitFile(mem)), 'utf8').trim(), String(96 * 1024 * 1024));
    const info = JSON.parse(await svirtOk(g.dir, ['--json', 'dominfo', 'cg-mem'])) as Record<string, unknown>;
    assert.ok((info['Cgroup limits'] as string[]).some((l) => l.includes('memtune hard_limit') && l.endsWith('= 100663296')));
    assert.match(String(info['Cgroup devices']), /c 1:3 rw/);
    await svirtOk(g.dir, ['destroy', 'cg-mem']);
    assert.deepEqual(leftovers(uuid), []);
    assert.deepEqual(readdirSync(join(g.dir, 'cgroups')), []);
  });

  it("QEMU's pids are limited: a thread over pids.max is refused (EAGAIN in QEMU's log)", async (t) => {
    const g = await guest(t, 'cg-pids');
    await svirtOk(g.dir, [...STACK, 'start', 'cg-pids', '--paused']);
    const row = readRunning(g.dir)[0];
    assert.ok(row?.pid);
    const pids = cgroupOf(row.pid).get('pids') ?? cgroupOf(row.pid).get('v2') ?? '';
    assert.equal(readFileSync(join(pids, 'pids.max'), 'utf8').trim(), '1024');
    // The limit down to what QEMU has now: the thread of a new iothread must be refused. QEMU
    // cannot run without the thread it asked for and exits, saying why in its log.
    writeFileSync(join(pids, 'pids.max'), readFileSync(join(pids, 'pids.current'), 'utf8').trim());
    const q = await QmpClient.connect(join(g.dir, 'run', 'monitor', `${row.uuid}.sock`));
    try {
      await assert.rejects(q.execute('object-add', { 'qom-type': 'iothread', id: 'io9' }));
    } finally {
      q.close();
    }
    const log = join(g.dir, 'log', 'cg-pids.log');
    assert.ok(
      await waitFor(() => /Resource temporarily unavailable/.test(readFileSync(log, 'utf8')), 5000),
      readFileSync(log, 'utf8'),
    );
    // and the guest's cleanup removed the cgroup
    assert.ok(await waitFor(() => leftovers(row.uuid).length === 0, 10_000));
  });

  it("QEMU's devices are limited: /dev/zero (0666, DAC allows it) is refused by the cgroup, /dev/null is not", async (t) => {
    const g = await guest(t, 'cg-dev');
    await svirtOk(g.dir, [...STACK, 'start', 'cg-dev', '--paused']);
    const row = readRunning(g.dir)[0];
    assert.ok(row?.pid);
    const q = await QmpClient.connect(join(g.dir, 'run', 'monitor', `${row.uuid}.sock`));
    try {
      const open = (path: string, id: string): Promise<unknown> =>
        q.execute('chardev-add', { id, backend: { type: 'file', data: { out: path } } });
      await open('/dev/null', 'ok0');
      await assert.rejects(open('/dev/zero', 'no0'), /Operation not permitted/);
    } finally {
      q.close();
    }
  });

  it('hot-plug of a block device extends the device list before QEMU gets it; detach shrinks it', async (t) => {
    const g = await guest(t, 'cg-plug');
    const file = makeImage(join(g.dir, 'loop.img'));
    const r = spawnSync('losetup', ['--find', '--show', file], { encoding: 'utf8' });
    if (r.status !== 0) return t.skip(`losetup: ${r.stderr.trim()}`);
    const dev = r.stdout.trim();
    t.after(() => void spawnSync('losetup', ['-d', dev]));
    const rdev = statSync(dev).rdev;
    const rule = `b ${Math.floor(rdev / 256) & 0xfff}:${(rdev & 0xff) | ((rdev >> 12) & 0xfff00)} rw`;
    await svirtOk(g.dir, [...STACK, 'start', 'cg-plug', '--paused']);
    const row = readRunning(g.dir)[0];
    assert.ok(row?.pid);
    const list = (): string[] => {
      const d = cgroupOf(row.pid ?? 0).get('devices');
      return d
        ? readFileSync(join(d, 'devices.list'), 'utf8').trim().split('\n')
        : JSON.parse(readFileSync(join(g.dir, 'cgroups', `${row.uuid}.json`), 'utf8')).deviceRules;
    };
    assert.ok(!list().includes(rule));
    await svirtOk(g.dir, ['attach-disk', 'cg-plug', dev, 'sdb']);
    assert.ok(list().includes(rule), `${rule} in ${list().join(', ')}`);
    await svirtOk(g.dir, ['detach-disk', 'cg-plug', 'sdb']);
    assert.ok(!list().includes(rule), `${rule} gone from ${list().join(', ')}`);
  });

  it('kill -9 of QEMU: the cleanup the monitor runs removes the cgroup', async (t) => {
    const g = await guest(t, 'cg-kill');
    await svirtOk(g.dir, [...STACK, 'start', 'cg-kill', '--paused']);
    const row = readRunning(g.dir)[0];
    assert.ok(row?.pid);
    const uuid = row.uuid;
    assert.ok(leftovers(uuid).length > 0);
    process.kill(row.pid, 'SIGKILL');
    assert.ok(await waitFor(() => leftovers(uuid).length === 0 && readdirSync(join(g.dir, 'cgroups')).length === 0, 10_000));
  });

  for (const point of ['start:cgroup-journaled', 'start:cgroup-made', 'start:launched'] as const) {
    it(`kill -9 of svirt at ${point}, then svirt reconcile: the cgroup is gone`, async (t) => {
      const g = await guest(t, 'cg-crash');
      const r = await svirt(g.dir, [...STACK, 'start', 'cg-crash', '--paused'], { SVIRT_TEST_CRASH_AT: point });
      assert.notEqual(r.code, 0, `svirt was killed at ${point}: ${r.stderr}`);
      const uuid = g.uuid();
      assert.ok(uuid);
      if (point !== 'start:cgroup-journaled') assert.ok(leftovers(uuid).length > 0, 'the crash left the cgroup');
      await svirtOk(g.dir, ['reconcile']);
      assert.deepEqual(leftovers(uuid), []);
      assert.deepEqual(readdirSync(join(g.dir, 'cgroups')), []);
    });
  }

  it('limits are never dropped: with no cgroup file system where svirt runs, a guest with <memtune> does not start', async (t) => {
    const g = await guest(t, 'cg-nofs');
    // A mount namespace of this test's own, with the cgroup mounts taken away (as `ip netns exec` leaves it).
    const r = spawnSync(
      'unshare',
      [
        '-m',
        '--propagation',
        'private',
        'sh',
        '-c',
        'umount -R /sys/fs/cgroup && exec "$0" "$@"',
        process.execPath,
        SVIRT_BIN,
        '--state-dir',
        g.dir,
        ...STACK,
        'start',
        'cg-nofs',
        '--paused',
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    assert.notEqual(r.status, 0, r.stdout);
    assert.match(
      r.stderr,
      /^error: domain 'cg-nofs' asks for <memtune>, <cputune> or <blkiotune>, but no cgroup file system is mounted where svirt runs$/m,
    );
    assert.equal(readRunning(g.dir).length, 0);
  });

  it("another state dir's guest with the same uuid: the start is refused and leaves the first guest and its cgroup alone", async (t) => {
    const a = await guest(t, 'cg-same');
    await svirtOk(a.dir, [...STACK, 'start', 'cg-same', '--paused']);
    const first = readRunning(a.dir)[0];
    assert.ok(first?.pid);
    const uuid = a.uuid();
    const dirs = [...cgroupOf(first.pid).values()].filter((d) => d.endsWith(`/svirt-${uuid}`));
    assert.ok(dirs.length > 0);
    // The same definition (same uuid) in a second state dir, whose image is its own.
    const b = scratch(t, 'svirt-cgroup-');
    const img = makeImage(join(b, 'cg-same.img'));
    const xml = readFileSync(join(a.dir, 'cg-same.xml'), 'utf8').replace(/<source file='[^']*'/, `<source file='${img}'`);
    const xmlWithUuid = xml.replace('<name>cg-same</name>', `<name>cg-same</name>\n  <uuid>${uuid}</uuid>`);
    const r = await svirt(b, [...STACK, 'create', writeDomain(b, 'cg-same', xmlWithUuid), '--paused']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^error: the cgroup ".*\/svirt-[0-9a-f-]+" exists and is not this state dir's .*: left alone\n$/);
    assert.equal(readRunning(b).length, 0);
    assert.deepEqual(existsSync(join(b, 'cgroups')) ? readdirSync(join(b, 'cgroups')) : [], []);
    await svirtOk(b, [...STACK, 'reconcile']);
    // The first guest runs on in its cgroup.
    assert.doesNotThrow(() => process.kill(first.pid as number, 0));
    for (const d of dirs) assert.ok(existsSync(d), `${d} is still there`);
    assert.deepEqual(
      [...cgroupOf(first.pid).values()].filter((d) => d.endsWith(`/svirt-${uuid}`)),
      dirs,
    );
    await svirtOk(a.dir, ['destroy', 'cg-same']);
    assert.deepEqual(leftovers(uuid), []);
  });

  it('a limit the kernel refuses fails the start in one line and leaves nothing', async (t) => {
    const g = await guest(t, 'cg-bad', false);
    const xml = readFileSync(join(g.dir, 'cg-bad.xml'), 'utf8').replace(
      MEMTUNE.trim(),
      '<blkiotune><device><path>/dev/null</path><read_bytes_sec>1</read_bytes_sec></device></blkiotune>',
    );
    writeFileSync(join(g.dir, 'cg-bad.xml'), xml);
    const r = await svirt(g.dir, [...STACK, 'create', join(g.dir, 'cg-bad.xml'), '--paused']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^error: .*blkiotune device "\/dev\/null" is not a block device\n$/);
    assert.equal(readRunning(g.dir).length, 0);
    assert.deepEqual(existsSync(join(g.dir, 'cgroups')) ? readdirSync(join(g.dir, 'cgroups')) : [], []);
  });
});

/** A cgroup of the test's own in one hierarchy, removed when the test ends. */
function ownCgroup(t: TestContext, parent: string, name: string): string {
  const dir = join(parent, `svirt-test-${name}-${process.pid}`);
  mkdirSync(dir);
  t.after(() => rmdirSync(dir));
  return dir;
}

/** Runs `head -c1 PATH` inside the cgroup dirs given; returns its stderr ('' when the open worked). */
function openIn(dirs: readonly string[], path: string): string {
  const join = dirs.map((d) => `echo $$ > ${d}/cgroup.procs`).join(' && ');
  const r = spawnSync('sh', ['-c', `${join} && exec head -c1 ${path}`], {
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return r.stderr.trim();
}

describe('device allow-list, each enforcement alone', { skip: skip() }, () => {
  const layout = hostLayout();
  const onlyNull: DeviceRule[] = [nodeRule('/dev/null', 'rw', '/dev/null')!];

  it(
    'v1 devices controller: deny a, allow the list',
    { skip: layout.v1.devices ? false : 'no v1 devices controller here' },
    (t) => {
      const h = layout.v1.devices!;
      const dir = ownCgroup(t, hierarchyDir(h, h.own), 'v1');
      applyDevicesV1(dir, onlyNull);
      assert.equal(openIn([dir], '/dev/null'), '');
      assert.match(openIn([dir], '/dev/zero'), /Operation not permitted/);
    },
  );

  it(
    'v2 BPF device program (here on the controller-less cgroup2 of a hybrid host), and its replacement for hot-plug',
    {
      skip: layout.v2 ? false : 'no cgroup2 here',
    },
    (t) => {
      const h = layout.v2!;
      const dir = ownCgroup(t, hierarchyDir(h, h.own), 'v2');
      applyDevicesV2(dir, onlyNull);
      assert.equal(openIn([dir], '/dev/null'), '');
      assert.match(openIn([dir], '/dev/zero'), /Operation not permitted/);
      // hot-plug extends the list: the program is replaced, /dev/zero opens; unplug shrinks it again
      applyDevicesV2(dir, [...onlyNull, nodeRule('/dev/zero', 'r', '/dev/zero')!]);
      assert.equal(openIn([dir], '/dev/zero'), '');
      applyDevicesV2(dir, onlyNull);
      assert.match(openIn([dir], '/dev/zero'), /Operation not permitted/);
    },
  );
});

describe(
  "svirt-monitor --cgroup2 (QEMU's child is created in the guest's cgroup2 dir, docs/cgroups.md)",
  { skip: skip() },
  () => {
    const layout = hostLayout();
    const v2 = layout.v2;
    const noV2 = v2 ? false : 'no cgroup2 hierarchy here';

    /** svirt-monitor [--cgroup2 DIR] --spec-fd (joining DIR) -- sh printing its own and its parent's cgroup2 path, as QEMU starts. */
    function runUnder(
      t: TestContext,
      monitorArgs: readonly string[],
      dir: string,
    ): { status: number | null; out: string; err: string } {
      const specFile = join(scratch(t, 'svirt-cgroup2-'), 'spec.json');
      writeFileSync(specFile, JSON.stringify({ version: 1, rlimits: [], noNewPrivs: true, keepFds: [], cgroups: [dir] }));
      const r = spawnSync(
        svirtMonitorPath(),
        [...monitorArgs, '--spec-fd', '3', '--', '/bin/sh', '-c', 'grep ^0:: /proc/self/cgroup /proc/$PPID/cgroup'],
        { stdio: ['ignore', 'pipe', 'pipe', openSync(specFile, 'r')], encoding: 'utf8', timeout: 20_000 },
      );
      return { status: r.status, out: r.stdout, err: r.stderr };
    }

    it(
      'the child starts in the dir and its confinement finds itself there; the monitor stays in its own cgroup',
      { skip: noV2 },
      (t) => {
        const h = v2!;
        const dir = ownCgroup(t, hierarchyDir(h, h.own), 'clone-into');
        const r = runUnder(t, ['--cgroup2', dir], dir);
        assert.match(r.out, /^pid \d+\nexit 0\n$/, r.err);
        const lines = r.err.trim().split('\n');
        assert.deepEqual(lines.length, 2, r.err);
        assert.match(lines[0] ?? '', /^\/proc\/self\/cgroup:0::/);
        assert.equal(hierarchyDir(h, lines[0]?.replace(/^.*:0::/, '') ?? ''), dir, 'the child is in the dir');
        assert.match(lines[1] ?? '', /^\/proc\/\d+\/cgroup:0::/);
        assert.equal(lines[1]?.replace(/^.*:0::/, ''), h.own, "the monitor is still in svirt's own cgroup");
      },
    );

    it('refuses a dir that is not a cgroup2 directory, or a link to one, in one line, and runs nothing', { skip: noV2 }, (t) => {
      const h = v2!;
      const dir = ownCgroup(t, hierarchyDir(h, h.own), 'refuse');
      const link = join(scratch(t, 'svirt-cgroup2-'), 'link');
      symlinkSync(dir, link);
      const v1 = Object.values(layout.v1)[0];
      for (const bad of ['/etc', link, ...(v1 ? [hierarchyDir(v1, v1.own)] : [])]) {
        const r = runUnder(t, ['--cgroup2', bad], dir);
        assert.equal(r.status, 2, bad);
        assert.equal(r.out, '', `${bad}: no child was started`);
        assert.equal(r.err, 'svirt-monitor: --cgroup2 wants one cgroup2 directory\n');
      }
    });
  },
);
