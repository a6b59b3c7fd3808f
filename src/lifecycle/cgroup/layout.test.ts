import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDomainXml } from '../../domain/index.js';
import { parseTune } from '../../domain/tune.js';
import { computeLayout, hierarchyDir, hostLayout, parseProcCgroup } from './layout.js';
import { planGuestCgroup } from './guest-cgroup.js';
import { v1Writes, v2Writes } from './settings.js';

const noDev = (): string => '8:0';

// FIXTURE (not this host): a pure cgroup v2 host, as the lab's Debian kernel has it (systemd's
// /sys/fs/cgroup, svirt run from a login session's scope).
const V2_MOUNTINFO = [
  '22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw',
  '26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot',
].join('\n');
const V2_PROC = '0::/user.slice/user-0.slice/session-3.scope\n';

// FIXTURE: a v1 host where cpu and cpuacct share a mount (systemd's classic layout), seen from a
// container whose mounts start at /docker/abc.
const V1_CONTAINER_MOUNTINFO = [
  '40 31 0:37 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct',
  '41 31 0:38 /docker/abc /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory',
  '42 31 0:39 /docker/abc /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids',
  '43 31 0:40 /other /sys/fs/cgroup/devices rw,nosuid - cgroup cgroup rw,devices',
].join('\n');
const V1_CONTAINER_PROC = [
  '5:devices:/docker/abc',
  '4:pids:/docker/abc/x',
  '3:memory:/docker/abc',
  '2:cpu,cpuacct:/docker/abc',
  '',
].join('\n');

const domain = (tune: string): ReturnType<typeof parseDomainXml> =>
  parseDomainXml(
    `<domain type='qemu'><name>t</name><uuid>6a1c3e2e-1f59-4bb2-9a9e-3f0d2a9b1c11</uuid><memory unit='MiB'>64</memory>${tune}<os><type>hvm</type></os><devices/></domain>`,
  );

describe('cgroup layout (real /proc and /sys of this host)', () => {
  it("finds svirt's own cgroup in every hierarchy /proc/self/cgroup names, and it holds this process", () => {
    const layout = hostLayout();
    const self = parseProcCgroup(readFileSync('/proc/self/cgroup', 'utf8'));
    const seen = [...Object.values(layout.v1), ...(layout.v2 ? [layout.v2] : [])];
    if (seen.length === 0) return; // no cgroup file system here: the layout says none
    assert.notEqual(layout.kind, 'none');
    for (const h of seen) {
      const dir = hierarchyDir(h, h.own);
      assert.ok(existsSync(join(dir, 'cgroup.procs')), `${dir} is a cgroup`);
      const procs = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n');
      assert.ok(procs.includes(String(process.pid)), `this process is in ${dir}`);
      if (h.version === 2) assert.equal(h.own, self.v2);
    }
    // On this host (a v1/v2 hybrid): memory is v1, and a controller-less cgroup2 is mounted too.
    if (layout.kind === 'hybrid') {
      assert.ok(layout.v1.memory);
      assert.equal(layout.v1.memory.own, self.v1.get('memory'));
    }
  });

  it('plans the guest cgroup under its own in each hierarchy, with the definition limits', () => {
    const layout = hostLayout();
    if (layout.kind === 'none') return;
    const plan = planGuestCgroup(domain("<memtune><hard_limit unit='MiB'>96</hard_limit></memtune>"), [], true, layout);
    for (const d of plan.dirs) {
      assert.match(d.dir, /\/svirt-6a1c3e2e-1f59-4bb2-9a9e-3f0d2a9b1c11$/);
      assert.ok(existsSync(join(d.dir, '..', 'cgroup.procs')), `the parent of ${d.dir} is svirt's own cgroup`);
    }
    const mem = plan.writes.find((w) => w.from === 'memtune hard_limit');
    assert.equal(mem?.value, String(96 * 1024 * 1024));
    assert.ok(plan.rules.some((r) => r.why === '/dev/null'));
    assert.ok(plan.rules.some((r) => r.major === 136 && r.minor === '*'));
  });
});

describe('cgroup layout (fixtures of hosts this one is not; labelled above)', () => {
  it('pure v2: one hierarchy with the controllers, the guest under the session scope', () => {
    const layout = computeLayout(V2_MOUNTINFO, V2_PROC, () => 'cpuset cpu io memory hugetlb pids rdma misc\n');
    assert.equal(layout.kind, 'v2');
    assert.deepEqual(layout.v1, {});
    assert.equal(layout.v2?.own, '/user.slice/user-0.slice/session-3.scope');
    assert.equal(hierarchyDir(layout.v2!, layout.v2!.own), '/sys/fs/cgroup/user.slice/user-0.slice/session-3.scope');
    const plan = planGuestCgroup(
      domain(
        "<memtune><hard_limit unit='MiB'>96</hard_limit></memtune><cputune><shares>512</shares><quota>50000</quota></cputune>",
      ),
      [],
      true,
      layout,
    );
    assert.deepEqual(
      plan.dirs.map((d) => d.dir),
      ['/sys/fs/cgroup/user.slice/user-0.slice/session-3.scope/svirt-6a1c3e2e-1f59-4bb2-9a9e-3f0d2a9b1c11'],
    );
    assert.deepEqual(plan.devices, ['v2']);
    assert.deepEqual(
      plan.writes.map((w) => `${w.file}=${w.value}`),
      ['memory.max=100663296', 'pids.max=1024', 'cpu.weight=512', 'cpu.max=50000 100000'],
    );
    assert.deepEqual([...plan.enable].sort(), ['cpu', 'memory', 'pids']);
  });

  it('pure v2 without a controller the definition needs: start fails closed', () => {
    const layout = computeLayout(V2_MOUNTINFO, V2_PROC, () => 'memory pids\n');
    assert.throws(
      () => planGuestCgroup(domain('<cputune><shares>512</shares></cputune>'), [], true, layout),
      /no cpu cgroup controller/,
    );
  });

  it("v1 in a container: co-mounted cpu,cpuacct; a mount svirt's cgroup is not below is not used", () => {
    const layout = computeLayout(V1_CONTAINER_MOUNTINFO, V1_CONTAINER_PROC, () => '');
    assert.equal(layout.kind, 'v1');
    assert.equal(layout.v1.cpu?.mount, '/sys/fs/cgroup/cpu,cpuacct');
    assert.deepEqual(layout.v1.cpu?.controllers, ['cpu', 'cpuacct']);
    assert.equal(hierarchyDir(layout.v1.pids!, layout.v1.pids!.own), '/sys/fs/cgroup/pids/x');
    assert.equal(hierarchyDir(layout.v1.memory!, layout.v1.memory!.own), '/sys/fs/cgroup/memory');
    assert.equal(layout.v1.devices, undefined, 'devices is mounted from /other: not where svirt runs');
    // a confined guest needs a device list, and neither v1 devices nor cgroup2 is there
    assert.throws(() => planGuestCgroup(domain(''), [], true, layout), /no devices cgroup controller/);
    assert.equal(planGuestCgroup(domain(''), [], false, layout).devices.length, 0);
  });

  it('mountinfo escapes and /proc/PID/cgroup with named hierarchies', () => {
    const p = parseProcCgroup('9:name=systemd:/\n4:memory:/a b\n0::/\n');
    assert.equal(p.v1.get('memory'), '/a b');
    assert.equal(p.v2, '/');
    const l = computeLayout('41 31 0:38 / /sys/fs/cgroup/mem\\040ory rw - cgroup cgroup rw,memory', '4:memory:/a b', () => '');
    assert.equal(hierarchyDir(l.v1.memory!, '/a b'), '/sys/fs/cgroup/mem ory/a b');
  });
});

describe('tuning: <memtune>, <cputune>, <blkiotune> to control files', () => {
  it('converts units and spells v1 and v2 as libvirt does', () => {
    const t = parseTune(
      domain(
        '<blkiotune><weight>500</weight><device><path>/dev/sda</path><read_bytes_sec>1048576</read_bytes_sec><write_iops_sec>100</write_iops_sec></device></blkiotune>' +
          "<memtune><hard_limit unit='G'>1</hard_limit><soft_limit>524288</soft_limit><swap_hard_limit unit='GiB'>2</swap_hard_limit></memtune>" +
          '<cputune><shares>2048</shares><period>20000</period><quota>-1</quota></cputune>',
      ).source,
    );
    assert.deepEqual(t.memory, { hardLimitKiB: 1048576, softLimitKiB: 524288, swapHardLimitKiB: 2097152 });
    const v1 = v1Writes(t, 100, noDev).map((w) => `${w.file}=${w.value}`);
    assert.deepEqual(v1, [
      'memory.limit_in_bytes=1073741824',
      'memory.soft_limit_in_bytes=536870912',
      'memory.memsw.limit_in_bytes=2147483648',
      'pids.max=100',
      'cpu.shares=2048',
      'cpu.cfs_period_us=20000',
      'cpu.cfs_quota_us=-1',
      'blkio.bfq.weight=500',
      'blkio.throttle.read_bps_device=8:0 1048576',
      'blkio.throttle.write_iops_device=8:0 100',
    ]);
    const v2 = v2Writes(t, 100, noDev).map((w) => `${w.file}=${w.value}`);
    assert.deepEqual(v2, [
      'memory.max=1073741824',
      'memory.high=536870912',
      'memory.swap.max=1073741824',
      'pids.max=100',
      'cpu.weight=2048',
      'cpu.max=max 20000',
      'io.bfq.weight=500',
      'io.max=8:0 rbps=1048576 wiops=100',
    ]);
  });

  it('refuses values outside libvirt ranges, naming the element', () => {
    assert.throws(() => parseTune(domain('<cputune><period>10</period></cputune>').source), /period.*not in \[1000, 1000000\]/s);
    assert.throws(() => parseTune(domain("<memtune><hard_limit unit='parsec'>1</hard_limit></memtune>").source), /not a unit/);
    assert.throws(
      () => parseTune(domain('<blkiotune><device><path>/etc/passwd</path></device></blkiotune>').source),
      /not a device under \/dev/,
    );
    assert.throws(
      () =>
        parseTune(
          domain("<memtune><hard_limit unit='MiB'>96</hard_limit><swap_hard_limit unit='MiB'>64</swap_hard_limit></memtune>")
            .source,
        ),
      /swap_hard_limit must be at least hard_limit/,
    );
    assert.throws(
      () => v2Writes(parseTune(domain('<cputune><shares>20000</shares></cputune>').source), 100, noDev),
      /above cgroup v2/,
    );
  });
});
