/**
 * A cgroup per guest on a pure cgroup v2 kernel (the enforcement lab's Debian kernel; this
 * development host is a v1/v2 hybrid, where test/e2e/cgroup.test.ts runs): the guest's memory
 * limit in memory.max, its pids.max, the BPF device program refusing /dev/zero (which DAC
 * allows), and the cgroup gone after destroy. Runs in either lab VM; skips elsewhere.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { processStatus } from '../../src/host/proc.js';
import { hierarchyDir, hostLayout, parseProcCgroup } from '../../src/lifecycle/cgroup/layout.js';
import { domainXml, makeImage, writeDomain } from '../helpers.js';
import { guest, LabDirs, labSkip, qmpConnect, svirtOk, type LabMode } from './lab.js';

const mode = process.env['SVIRT_LAB'];
const skip =
  mode === 'selinux' || mode === 'apparmor'
    ? labSkip(mode as LabMode) ||
      (hostLayout().kind === 'v2' ? false : `the lab kernel's cgroups are ${hostLayout().kind}, not pure v2`)
    : `runs only inside the enforcement lab (npm run test:enforce); SVIRT_LAB is ${mode === undefined ? 'unset' : JSON.stringify(mode)}`;
const dirs = new LabDirs();
after(() => dirs.cleanup());

describe('a cgroup per guest on pure cgroup v2 (lab)', { skip }, () => {
  it('memory.max, pids.max and the BPF device list hold QEMU; destroy removes the cgroup', async () => {
    const dir = dirs.make('svirt-lab-cgroup-');
    const img = makeImage(join(dir, 'c.img'));
    const xml = domainXml('cg', [{ path: img, dev: 'vda' }]).replace(
      '<vcpu>',
      "<memtune><hard_limit unit='MiB'>96</hard_limit></memtune>\n  <vcpu>",
    );
    await svirtOk(dir, ['define', writeDomain(dir, 'cg', xml)]);
    await svirtOk(dir, ['--security-driver', 'dac', 'start', 'cg', '--paused']);
    const g = guest(dir, 'cg');
    const layout = hostLayout();
    const v2 = layout.v2;
    assert.ok(v2);
    /** The cgroup2 path in a /proc/…/cgroup file. */
    const v2Path = (file: string): string => parseProcCgroup(readFileSync(file, 'utf8')).v2 ?? '';
    const path = v2Path(`/proc/${g.pid}/cgroup`);
    assert.match(path, new RegExp(`/svirt-${g.uuid}$`));
    // svirt-monitor created QEMU's child inside the cgroup (--cgroup2, clone3) and stayed
    // outside it itself; every thread QEMU made is inside.
    for (const tid of readdirSync(`/proc/${g.pid}/task`))
      assert.equal(v2Path(`/proc/${g.pid}/task/${tid}/cgroup`), path, `thread ${tid}`);
    const monitor = Number(processStatus(g.pid)?.get('PPid'));
    assert.match(readFileSync(`/proc/${monitor}/cmdline`, 'utf8'), /svirt-monitor\0/);
    assert.equal(v2Path(`/proc/${monitor}/cgroup`), v2Path('/proc/self/cgroup'), "the monitor is in svirt's own cgroup");
    const cg = hierarchyDir(v2, path);
    assert.equal(readFileSync(join(cg, 'memory.max'), 'utf8').trim(), String(96 * 1024 * 1024));
    assert.equal(readFileSync(join(cg, 'pids.max'), 'utf8').trim(), '1024');
    const q = await qmpConnect(g.qmp);
    try {
      await q.execute('chardev-add', { id: 'n0', backend: { type: 'file', data: { out: '/dev/null' } } });
      await assert.rejects(
        q.execute('chardev-add', { id: 'z0', backend: { type: 'file', data: { out: '/dev/zero' } } }),
        /Operation not permitted/,
      );
    } finally {
      q.close();
    }
    await svirtOk(dir, ['destroy', 'cg']);
    assert.equal(existsSync(cg), false);
  });
});
