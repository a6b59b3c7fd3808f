/**
 * Host facts through `svirt serve` (issue 14): the real virsh and python-libvirt ask for free
 * memory, cells, node statistics, sysinfo, the vCPU limit and domain capabilities, and get the
 * kernel's own numbers, never a silent 0.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import { isRoot, scratch } from '../helpers.js';
import { DEBIAN_PYTHON, havePythonLibvirt, haveVirsh, python, startServer, uri, virshOk } from './support.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const skip = !haveVirsh()
  ? 'virsh is not installed (apt-get install libvirt-clients)'
  : !isRoot()
    ? 'svirt serve runs as root here'
    : false;

function meminfoKiB(name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'));
  assert.ok(m?.[1]);
  return Number(m[1]);
}

/** Within 5% (free memory moves between two reads). */
function near(actual: number, expected: number, what: string): void {
  assert.ok(actual > 0, `${what} is not 0`);
  assert.ok(Math.abs(actual - expected) <= expected * 0.05, `${what}: ${actual} against ${expected}`);
}

describe('svirt serve: host facts', { skip, timeout: 120_000 }, () => {
  it('answers virsh freecell, maxvcpus, nodememstats, nodecpustats, sysinfo and domcapabilities', async (t) => {
    const dir = scratch(t);
    const server = await startServer(t, dir);
    const s = server.socket;
    near(Number(/Total:\s+(\d+) KiB/.exec(await virshOk(s, ['freecell']))?.[1]), meminfoKiB('MemFree'), 'freecell');
    const all = await virshOk(s, ['freecell', '--all']);
    near(Number(/^\s*0:\s+(\d+) KiB/m.exec(all)?.[1]), meminfoKiB('MemFree'), 'freecell --all, cell 0');
    assert.equal((await virshOk(s, ['maxvcpus'])).trim(), '255');
    const mem = await virshOk(s, ['nodememstats']);
    assert.equal(Number(/^total\s*:\s+(\d+) KiB/m.exec(mem)?.[1]), meminfoKiB('MemTotal'), mem);
    const cpu = await virshOk(s, ['nodecpustats']);
    for (const f of ['user', 'system', 'idle', 'iowait']) assert.match(cpu, new RegExp(`^${f}:\\s+\\d+`, 'm'));
    assert.ok(Number(/^idle:\s+(\d+)/m.exec(cpu)?.[1]) > 0);
    await assert.rejects(virshOk(s, ['nodecpustats', String(cpus().length + 5)]), /Invalid cpuNum/);
    const sys = await virshOk(s, ['sysinfo']);
    assert.match(sys, /^<sysinfo type='smbios'>/);
    const vendor = /^vendor_id\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1];
    if (vendor) assert.ok(sys.includes(`<entry name='manufacturer'>${vendor}</entry>`), sys);
    const caps = await virshOk(s, ['domcapabilities']);
    assert.match(caps, /<path>\/usr\/bin\/qemu-system-x86_64<\/path>/);
    assert.match(caps, /<machine>pc-i440fx-[\d.]+<\/machine>/);
    for (const loader of caps.matchAll(/<loader supported='yes'>[\s\S]*?<\/loader>/g)) {
      for (const v of loader[0].matchAll(/<value>(\/[^<]+)<\/value>/g)) assert.ok(existsSync(v[1] as string), `${v[1]} exists`);
    }
    const q35 = await virshOk(s, ['domcapabilities', '--machine', 'q35']);
    assert.match(q35, /<machine>pc-q35-[\d.]+<\/machine>/);
    assert.doesNotMatch(q35.slice(q35.indexOf("<enum name='bus'>")), /^\s*<value>ide<\/value>/m, 'no IDE on q35');
    await assert.rejects(virshOk(s, ['domcapabilities', '--machine', 'no-such-machine']), /is not supported by emulator/);
    // ConnectGetVersion: QEMU's own --version, run off serve's loop
    const qemu = spawnSync('/usr/bin/qemu-system-x86_64', ['--version'], { encoding: 'utf8' });
    const own = /version (\d+\.\d+\.\d+)/.exec(qemu.stdout)?.[1];
    assert.ok(own, qemu.stdout);
    assert.match(await virshOk(s, ['version']), new RegExp(`^Running hypervisor: QEMU ${own.replace(/\./g, '\\.')}$`, 'm'));
  });

  it(
    'gives python-libvirt free memory, cells and the vCPU limit',
    { skip: havePythonLibvirt() ? false : `${DEBIAN_PYTHON} cannot import libvirt` },
    async (t) => {
      const dir = scratch(t);
      const server = await startServer(t, dir);
      const script = join(dir, 'host.py');
      writeFileSync(
        script,
        "import json, sys, libvirt\nc = libvirt.open(sys.argv[1])\nprint(json.dumps({'free': c.getFreeMemory(), 'cells': c.getCellsFreeMemory(0, 1), 'max': c.getMaxVcpus(None)}))\n",
      );
      const r = await python(script, [uri(server.socket)]);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { free: number; cells: number[]; max: number };
      near(out.free / 1024, meminfoKiB('MemFree'), 'getFreeMemory');
      assert.equal(out.cells.length, 1);
      near((out.cells[0] ?? 0) / 1024, meminfoKiB('MemFree'), 'getCellsFreeMemory');
      assert.equal(out.max, 255);
    },
  );
});
