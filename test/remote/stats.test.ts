/**
 * Guest statistics through `svirt serve` (issue 14): the real virsh's dommemstat, domblkstat,
 * domblkinfo, vcpuinfo and domstats on a confined guest, checked against QEMU's process
 * (/proc) and the image itself; python-libvirt's memoryStats() and vcpus().
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { domainXml, makeImage, readRunning, scratch, writeDomain } from '../helpers.js';
import { havePythonLibvirt, qemuDacVirshSkip, python, startServer, uri, virsh, virshOk } from './support.js';

const skip = qemuDacVirshSkip();

function vmRssKiB(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
}

describe('svirt serve: guest statistics', { skip, timeout: 120_000 }, () => {
  it('answers dommemstat, domblkstat, domblkinfo, vcpuinfo and domstats from QEMU and /proc', async (t) => {
    const dir = scratch(t);
    const server = await startServer(t, dir);
    const s = server.socket;
    const img = makeImage(join(dir, 'st.img'), 8);
    const xml = domainXml('st', [{ path: img, dev: 'vda' }]).replace('<vcpu>1</vcpu>', '<vcpu>2</vcpu>');
    await virshOk(s, ['define', writeDomain(dir, 'st', xml)]);
    const off = await virsh(s, ['dommemstat', 'st']);
    assert.notEqual(off.code, 0, 'no statistics of a guest that does not run');
    assert.match(off.stderr, /domain is not running/);
    await virshOk(s, ['start', 'st', '--paused']);
    const pid = readRunning(dir).find((r) => r.name === 'st')?.pid;
    assert.ok(pid);

    const mem = await virshOk(s, ['dommemstat', 'st']);
    const memKiB = Number(/<memory unit='KiB'>(\d+)</.exec(await virshOk(s, ['dumpxml', 'st']))?.[1]);
    assert.equal(Number(/^actual (\d+)$/m.exec(mem)?.[1]), memKiB, mem);
    const rss = Number(/^rss (\d+)$/m.exec(mem)?.[1]);
    assert.ok(Math.abs(rss - vmRssKiB(pid)) < vmRssKiB(pid) * 0.2, `rss ${rss} against VmRSS ${vmRssKiB(pid)}`);

    for (const name of ['vda', img]) {
      const info = await virshOk(s, ['domblkinfo', 'st', name]);
      assert.equal(Number(/^Capacity:\s+(\d+)$/m.exec(info)?.[1]), statSync(img).size, info);
    }
    assert.match(await virshOk(s, ['domblkstat', 'st', 'vda']), /^vda rd_req \d+$/m);
    const bad = await virsh(s, ['domblkstat', 'st', 'vdz']);
    assert.match(bad.stderr, /vdz is not a disk of domain 'st'/);

    const vcpus = await virshOk(s, ['vcpuinfo', 'st']);
    assert.equal([...vcpus.matchAll(/^VCPU:\s+\d+$/gm)].length, 2, vcpus);
    const stats = await virshOk(s, ['domstats', 'st']);
    for (const line of [
      'state.state=3',
      'vcpu.current=2',
      'block.count=1',
      'block.0.name=vda',
      `block.0.capacity=${statSync(img).size}`,
    ]) {
      assert.ok(stats.includes(line), `${line} in\n${stats}`);
    }
    assert.match(stats, /^\s+cpu\.time=\d+$/m);
    // domstats without a name: GetAllDomainStats' activity, persistence and state filters
    await virshOk(s, [
      'define',
      writeDomain(dir, 'idle', domainXml('idle', [{ path: makeImage(join(dir, 'idle.img'), 1), dev: 'vda' }])),
    ]);
    const listed = async (...opts: string[]) =>
      [...(await virshOk(s, ['domstats', '--state', ...opts])).matchAll(/^Domain: '([^']+)'$/gm)].map((m) => m[1]).sort();
    assert.deepEqual(await listed(), ['idle', 'st']);
    assert.deepEqual(await listed('--list-paused'), ['st']);
    assert.deepEqual(await listed('--list-running'), []);
    assert.deepEqual(await listed('--list-shutoff'), ['idle']);
    assert.deepEqual(await listed('--list-inactive'), ['idle']);
    assert.deepEqual(await listed('--list-active', '--list-persistent'), ['st']);
    assert.deepEqual(await listed('--list-transient'), []);

    if (havePythonLibvirt()) {
      const script = join(dir, 'stats.py');
      writeFileSync(
        script,
        "import json, sys, libvirt\nd = libvirt.open(sys.argv[1]).lookupByName('st')\nprint(json.dumps({'mem': d.memoryStats(), 'vcpus': len(d.vcpus()[0])}))\n",
      );
      const r = await python(script, [uri(s)]);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { mem: { actual: number; rss: number }; vcpus: number };
      assert.equal(out.mem.actual, memKiB);
      assert.ok(out.mem.rss > 0);
      assert.equal(out.vcpus, 2);
    }
    await virshOk(s, ['destroy', 'st']);
  });
});
