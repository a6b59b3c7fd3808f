import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { DiskDef } from '../domain/domain-def.js';
import { parseDomainXml } from '../domain/index.js';
import { completeMachine } from '../domain/machine-defaults.js';
import { virtiofsQemuArgv } from '../lifecycle/filesystems.js';
import { pciProps } from './argv-machine.js';
import { blockdevNodes, buildArgv, chardevChanges, diskKey, type FdSetEntry } from './argv.js';

const fixtures = fileURLToPath(new URL('../../../test/fixtures/argv/', import.meta.url));

/** fd numbers as the hypervisor assigns them: 4, 5, ... in disk and layer order. */
function fdsetsFor(xml: string): Map<string, FdSetEntry> {
  const def = parseDomainXml(xml);
  const sets = new Map<string, FdSetEntry>();
  let n = 0;
  for (const disk of def.disks) {
    if (disk.path === undefined) continue;
    const paths = [disk.path];
    for (let b = disk.backingStore; b; b = b.backingStore) paths.push(b.path);
    paths.forEach((path, i) => {
      n++;
      sets.set(diskKey(disk, i), { fd: 3 + n, set: n, path, readonly: i > 0 || disk.readonly });
    });
  }
  return sets;
}

describe('buildArgv', () => {
  it('matches the golden argv for a qcow2 chain, a CD-ROM, a shareable SCSI disk and two serials', () => {
    const xml = readFileSync(`${fixtures}qcow2-chain.xml`, 'utf8');
    // As start runs it: libvirt's implicit controllers and PCI addresses filled in first.
    const argv = buildArgv(completeMachine(parseDomainXml(xml)), {
      emulator: '/usr/bin/qemu-system-x86_64',
      accel: 'tcg',
      qmpFd: 9,
      paused: true,
      fdsets: fdsetsFor(xml),
      chardevFds: new Map([
        [0, { fd: 10, set: 9, path: '/var/log/chain-serial.log', readonly: false }],
        [1, { fd: 11, set: 0, path: '/run/chain.sock', readonly: false }],
      ]),
    });
    const text = argv.join('\n') + '\n';
    const golden = `${fixtures}qcow2-chain.argv`;
    if (process.env['SVIRT_UPDATE_GOLDEN'] === '1') writeFileSync(golden, text);
    assert.equal(text, readFileSync(golden, 'utf8'));
  });

  it('matches the golden argv for q35 with UEFI pflash over fds, a block disk, SATA on ICH9, root ports, rng and balloon', () => {
    const xml = readFileSync(`${fixtures}q35-uefi.xml`, 'utf8');
    const def = completeMachine(parseDomainXml(xml));
    const argv = buildArgv(def, {
      emulator: '/usr/bin/qemu-system-x86_64',
      accel: 'kvm',
      qmpFd: 4,
      paused: false,
      fdsets: new Map([
        [diskKey(def.disks[0] as DiskDef, 0), { fd: 5, set: 1, path: '/dev/vg0/uefi', readonly: false, block: true }],
        [diskKey(def.disks[1] as DiskDef, 0), { fd: 6, set: 2, path: '/images/install.iso', readonly: true }],
      ]),
      rngFds: new Map([[0, { fd: 7, set: 3, path: '/dev/urandom', readonly: true }]]),
      firmwareFds: {
        code: { fd: 8, set: 4, path: '/usr/share/OVMF/OVMF_CODE_4M.secboot.fd' },
        vars: { fd: 9, set: 5, path: '/var/lib/svirt/nvram/uefi_VARS.fd' },
      },
    });
    const text = argv.join('\n') + '\n';
    const golden = `${fixtures}q35-uefi.argv`;
    if (process.env['SVIRT_UPDATE_GOLDEN'] === '1') writeFileSync(golden, text);
    assert.equal(text, readFileSync(golden, 'utf8'));
    assert.match(text, /"driver":"host_device","filename":"\/dev\/fdset\/1"/, 'a block device is a host_device');
    assert.match(
      text,
      /-machine\nq35,accel=kvm,dump-guest-core=off,pflash0=libvirt-pflash0-format,pflash1=libvirt-pflash1-format,smm=on\n/,
    );
    assert.ok(!text.includes('OVMF_VARS_4M.ms.fd'), 'QEMU never sees the template');
  });

  for (const machine of ['pc', 'q35'])
    it(`matches the golden argv for ${machine} with a video, virtio and USB inputs, a channel, rng, balloon, NIC and a shared folder, each at its PCI address`, () => {
      const xml = readFileSync(`${fixtures}${machine}-devices.xml`, 'utf8');
      const def = completeMachine(parseDomainXml(xml));
      const argv = buildArgv(def, {
        emulator: '/usr/bin/qemu-system-x86_64',
        accel: 'tcg',
        qmpFd: 4,
        paused: true,
        fdsets: new Map([[diskKey(def.disks[0] as DiskDef, 0), { fd: 5, set: 1, path: '/images/devs.img', readonly: false }]]),
        chardevFds: new Map([[0, { fd: 6, set: 0, path: '/run/devs.agent', readonly: false }]]),
        nics: new Map([[0, { kind: 'user' }]]),
      });
      // The share's device comes from its helper (lifecycle/filesystems.ts), at the address the definition holds.
      const fs = def.filesystems?.[0];
      assert.ok(fs?.address, 'the share has an address');
      argv.push(...virtiofsQemuArgv(0, fs.tag, 7, pciProps(def, fs.address)));
      const text = argv.join('\n') + '\n';
      const golden = `${fixtures}${machine}-devices.argv`;
      if (process.env['SVIRT_UPDATE_GOLDEN'] === '1') writeFileSync(golden, text);
      assert.equal(text, readFileSync(golden, 'utf8'));
      // Every PCI device QEMU gets names its bus and slot, and no two share one.
      const devices = argv.filter((a, i) => argv[i - 1] === '-device');
      const pci = devices.filter((d) => !/^(isa-serial|virtserialport|virtconsole|usb-|ide-|scsi-)/.test(d.split(',')[0] ?? ''));
      const places = pci.map((d) => {
        const bus = /,bus=([^,]+)/.exec(d)?.[1];
        const addr = /,addr=([^,]+)/.exec(d)?.[1];
        assert.ok(bus && addr, `no PCI address: ${d}`);
        return `${bus}/${addr}`;
      });
      assert.equal(new Set(places).size, places.length, `two devices share a slot:\n${pci.join('\n')}`);
    });

  it("gives a <serial type='pipe'> its FIFOs as fds: one FIFO on the command line, a .in/.out pair over QMP", () => {
    const xml = (n: number): string =>
      "<domain type='qemu'><name>p</name><memory>65536</memory><os><type>hvm</type></os><devices>" +
      "<serial type='pipe'><source path='/run/a'/></serial>".repeat(n) +
      '</devices></domain>';
    const base = { emulator: '/usr/bin/qemu-system-x86_64', accel: 'tcg' as const, qmpFd: 4, paused: false, fdsets: new Map() };
    const one = parseDomainXml(xml(1));
    const single = new Map([[0, { fds: [{ fd: 5, set: 3, path: '/run/a' }], both: 3 }]]);
    const argv = buildArgv(one, { ...base, pipeFds: single }).join(' ');
    assert.match(argv, / -add-fd fd=5,set=3,opaque=\/run\/a /);
    assert.match(argv, / -chardev pipe,id=charserial0,path=\/dev\/fdset\/3 -device isa-serial,chardev=charserial0,id=serial0$/);
    assert.deepEqual(chardevChanges(one, single), [], 'nothing to change over QMP');

    const two = parseDomainXml(xml(2));
    const pair = {
      fds: [
        { fd: 5, set: 3, path: '/run/a.in' },
        { fd: 6, set: 3, path: '/run/a.in' },
        { fd: 7, set: 4, path: '/run/a.out' },
        { fd: 8, set: 4, path: '/run/a.out' },
      ],
      input: 3,
      output: 4,
    };
    const both = new Map([
      [0, single.get(0) ?? pair],
      [1, pair],
    ]);
    const argv2 = buildArgv(two, { ...base, pipeFds: both });
    assert.deepEqual(
      argv2.filter((a) => a.startsWith('fd=')),
      [
        'fd=5,set=3,opaque=/run/a',
        'fd=5,set=3,opaque=/run/a.in',
        'fd=6,set=3,opaque=/run/a.in',
        'fd=7,set=4,opaque=/run/a.out',
        'fd=8,set=4,opaque=/run/a.out',
      ],
    );
    assert.ok(argv2.join(' ').endsWith('-chardev null,id=charserial1 -device isa-serial,chardev=charserial1,id=serial1'));
    assert.deepEqual(chardevChanges(two, both), [
      { id: 'charserial1', backend: { type: 'file', data: { in: '/dev/fdset/3', out: '/dev/fdset/4', append: true } } },
    ]);
  });

  it('declares the format of every layer and never lets QEMU follow a backing file name', () => {
    const xml = readFileSync(`${fixtures}qcow2-chain.xml`, 'utf8');
    const def = parseDomainXml(xml);
    const disk = def.disks[0];
    assert.ok(disk);
    const nodes = blockdevNodes(disk, fdsetsFor(xml));
    const formats = nodes.filter((n) => n['driver'] !== 'file');
    assert.deepEqual(
      formats.map((n) => n['driver']),
      ['raw', 'qcow2', 'qcow2'],
    );
    for (const n of formats)
      if (n['driver'] === 'qcow2') assert.ok('backing' in n, 'every qcow2 layer names its backing node (or null)');
    assert.equal(formats[0]?.['backing'], undefined, 'the raw base has no backing');
    for (const n of nodes.filter((x) => x['driver'] === 'file'))
      assert.match(String(n['filename']), /^\/dev\/fdset\/\d+$/, 'images only as fds');
  });
});
