import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDomainXml } from '../domain/index.js';
import { SvirtError } from '../errors.js';
import { archOfBinary, canonicalMachine, emulatorPath, installedEmulators, resolveEmulator } from './emulator.js';
import { machinesOf, parseMachineHelp, warmMachineCache } from './machine-types.js';

const X86 = '/usr/bin/qemu-system-x86_64';
const skip = existsSync(X86) ? false : 'qemu-system-x86_64 is not installed';

function def(type: string, emulator = ''): ReturnType<typeof parseDomainXml> {
  return parseDomainXml(
    `<domain type='qemu'><name>e</name><memory>65536</memory><os>${type}</os><devices>${emulator ? `<emulator>${emulator}</emulator>` : ''}</devices></domain>`,
  );
}

function cache(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'svirt-emu-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('emulator per architecture', () => {
  it('maps libvirt arches to qemu-system binaries', () => {
    assert.equal(emulatorPath(def("<type arch='x86_64'>hvm</type>")), X86);
    assert.equal(emulatorPath(def("<type arch='i686'>hvm</type>")), '/usr/bin/qemu-system-i386');
    assert.equal(emulatorPath(def("<type arch='aarch64' machine='virt'>hvm</type>")), '/usr/bin/qemu-system-aarch64');
    assert.equal(archOfBinary('/usr/bin/qemu-system-i386'), 'i686');
    assert.equal(archOfBinary('/usr/bin/qemu-img'), undefined);
  });

  it('refuses an arch whose binary is not installed, naming the Debian package', (t) => {
    if (existsSync('/usr/bin/qemu-system-aarch64')) return t.skip('qemu-system-aarch64 is installed here');
    assert.throws(
      () => resolveEmulator(def("<type arch='aarch64' machine='virt'>hvm</type>"), cache(t)),
      (e: unknown) =>
        e instanceof SvirtError && /qemu-system-aarch64 is not installed \(Debian package qemu-system-arm\)/.test(e.message),
    );
  });

  it('checks a given <emulator>: it must run the guest arch and be a QEMU binary', { skip }, (t) => {
    const dir = cache(t);
    assert.equal(resolveEmulator(def("<type arch='x86_64'>hvm</type>", X86), dir).path, X86);
    if (existsSync('/usr/bin/qemu-system-i386')) {
      assert.throws(
        () => resolveEmulator(def("<type arch='x86_64'>hvm</type>", '/usr/bin/qemu-system-i386'), dir),
        /runs i686 guests, not x86_64/,
      );
    }
    assert.throws(() => resolveEmulator(def('<type>hvm</type>', '/bin/true'), dir), /is not a qemu-system-<arch> binary/);
    assert.throws(
      () => resolveEmulator(def("<type machine='virt'>hvm</type>"), dir),
      /machine type 'virt' is not one of qemu-system-x86_64's/,
    );
  });

  it('reads the machine types once and caches them by the binary (dev, ino, mtime)', { skip }, (t) => {
    const dir = cache(t);
    const st = statSync(X86);
    const machines = machinesOf(X86, st, dir);
    const q35 = machines.find((m) => m.name === 'q35');
    assert.ok(q35?.canonical?.startsWith('pc-q35-'), 'q35 is an alias of the newest pc-q35');
    const cached = JSON.parse(readFileSync(join(dir, 'qemu-machines.json'), 'utf8')) as Record<string, { ino: number }>;
    assert.equal(cached[X86]?.ino, st.ino);
    const t0 = process.hrtime.bigint();
    assert.deepEqual(machinesOf(X86, st, dir), machines);
    assert.ok(process.hrtime.bigint() - t0 < 20_000_000n, 'a cache hit runs no QEMU');
    const info = resolveEmulator(def("<type machine='q35'>hvm</type>"), dir);
    assert.equal(canonicalMachine(info, 'q35'), q35?.canonical);
    assert.match(canonicalMachine(info, undefined) ?? '', /^pc-i440fx-/, "no machine: the binary's default");
  });

  it('fills the cache for every installed emulator off the event loop (svirt serve at its start)', { skip }, async (t) => {
    const dir = cache(t);
    let ticks = 0;
    const tick = setInterval(() => ticks++, 5);
    let probed: string[];
    try {
      probed = await warmMachineCache(dir, installedEmulators());
    } finally {
      clearInterval(tick);
    }
    assert.ok(probed.includes(X86), probed.join(' '));
    // each probe runs QEMU for ~60 ms; run on the loop (spawnSync), none of these would fire
    assert.ok(ticks >= 3, `a 5 ms timer ran ${ticks} times while ${probed.length} QEMU probes ran`);
    const st = statSync(X86);
    const cached = JSON.parse(readFileSync(join(dir, 'qemu-machines.json'), 'utf8')) as Record<
      string,
      { ino: number; machines: unknown[] }
    >;
    assert.equal(cached[X86]?.ino, st.ino);
    assert.deepEqual(machinesOf(X86, st, dir), cached[X86]?.machines, 'what machinesOf reads is what the probe found');
    assert.deepEqual(await warmMachineCache(dir, installedEmulators()), [], 'a warm cache probes nothing');
  });

  it('parses -machine help', () => {
    const m = parseMachineHelp(
      'Supported machines are:\npc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)\npc-i440fx-7.2        Standard PC (i440FX + PIIX, 1996) (default)\nx-old                Old (deprecated)\n',
    );
    assert.deepEqual(m, [
      { name: 'pc', canonical: 'pc-i440fx-7.2', isDefault: false, deprecated: false },
      { name: 'pc-i440fx-7.2', isDefault: true, deprecated: false },
      { name: 'x-old', isDefault: false, deprecated: true },
    ]);
  });
});
