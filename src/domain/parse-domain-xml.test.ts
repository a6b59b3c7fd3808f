import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { ErrorCode } from '../errors.js';
import { SvirtError } from '../errors.js';
import type { DomainDef } from './domain-def.js';
import { formatDomainXml } from './format-domain-xml.js';
import { canonicalUuid, parseDomainXml, unitBytes } from './parse-domain-xml.js';

// Compiled to dist/src/domain/: the fixtures live at the package root.
const DOMAINS = new URL('../../../test/fixtures/domains/', import.meta.url);

function fixture(name: string): string {
  return readFileSync(new URL(name, DOMAINS), 'utf8');
}

function parse(name: string): DomainDef {
  return parseDomainXml(fixture(name));
}

/** A domain around `inner`, for rules that need only a few elements. */
function domain(inner: string, devices = ''): string {
  return `<domain type='kvm'><name>t</name><memory>1024</memory><os><type>hvm</type></os>${inner}<devices>${devices}</devices></domain>`;
}

function rejects(text: string, code: ErrorCode, pattern: RegExp): SvirtError {
  let caught: unknown;
  const start = performance.now();
  try {
    parseDomainXml(text);
  } catch (err) {
    caught = err;
  }
  const took = performance.now() - start;
  assert.ok(caught instanceof SvirtError, `expected a SvirtError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.match(caught.message, pattern);
  // a hang or an expansion shows as seconds; speed itself is the bench's job
  assert.ok(took < 5000, `took ${took.toFixed(1)} ms: the refusal hangs`);
  return caught;
}

describe('parseDomainXml: fixtures', () => {
  it('parses every fixture in test/fixtures/domains', () => {
    const names = readdirSync(DOMAINS).filter((n) => n.endsWith('.xml'));
    assert.ok(names.length >= 10);
    for (const n of names) assert.doesNotThrow(() => parse(n), n);
  });

  it('reads a virt-install guest and lists the devices it does not model', () => {
    const def = parse('virt-install-guest.xml');
    assert.equal(def.type, 'kvm');
    assert.equal(def.name, 'fedora39');
    assert.equal(def.uuid, '7a2c1f3e-9b4d-4e8a-a1c2-3d4e5f607182');
    assert.equal(def.memoryKiB, 2097152);
    assert.equal(def.vcpus, 2);
    assert.deepEqual(def.os, { type: 'hvm', arch: 'x86_64', machine: 'pc-q35-8.2' });
    assert.deepEqual(def.features, ['acpi', 'apic', 'vmport']);
    assert.equal(def.emulator, '/usr/bin/qemu-system-x86_64');
    assert.deepEqual(def.disks[0], {
      type: 'file',
      device: 'disk',
      format: 'qcow2',
      path: '/var/lib/libvirt/images/fedora39.qcow2',
      target: { dev: 'vda', bus: 'virtio' },
      readonly: false,
      shareable: false,
      seclabels: [],
      address: { domain: 0, bus: 4, slot: 0, function: 0 },
    });
    assert.deepEqual(def.disks[1], {
      type: 'file',
      device: 'cdrom',
      format: 'raw',
      target: { dev: 'sda', bus: 'sata' },
      readonly: true,
      shareable: false,
      seclabels: [],
    });
    // The console is only serial 0's alias; the agent's socket is placed at start.
    assert.deepEqual(def.chardevs, [
      { element: 'serial', type: 'pty', targetPort: 0, seclabels: [] },
      {
        element: 'channel',
        type: 'unix',
        mode: 'bind',
        targetType: 'virtio',
        targetName: 'org.qemu.guest_agent.0',
        seclabels: [],
      },
      { element: 'channel', type: 'spicevmc', targetType: 'virtio', targetName: 'com.redhat.spice.0', seclabels: [] },
    ]);
    assert.deepEqual(def.graphics, [
      { type: 'spice', autoport: true, listen: { type: 'address', address: '127.0.0.1' }, listenGiven: false },
    ]);
    assert.deepEqual(def.videos, [{ model: 'virtio', primary: true }]);
    assert.deepEqual(def.inputs, [
      { type: 'tablet', bus: 'usb' },
      { type: 'mouse', bus: 'ps2' },
      { type: 'keyboard', bus: 'ps2' },
    ]);
    const ignored = def.ignoredDevices.map((d) => d.name);
    for (const n of ['sound', 'redirdev']) {
      assert.ok(ignored.includes(n), n);
    }
    // Controllers, the balloon and the rng are modelled (src/domain/parse-machine.ts).
    for (const n of ['controller', 'memballoon', 'rng']) assert.ok(!ignored.includes(n), n);
    assert.deepEqual(def.controllers, [
      { type: 'usb', index: 0, model: 'qemu-xhci', address: { domain: 0, bus: 2, slot: 0, function: 0 } },
      { type: 'pci', index: 0, model: 'pcie-root' },
      { type: 'sata', index: 0, address: { domain: 0, bus: 0, slot: 0x1f, function: 2 } },
    ]);
    assert.deepEqual(def.memballoon, { model: 'virtio', address: { domain: 0, bus: 5, slot: 0, function: 0 } });
    assert.deepEqual(def.rngs, [{ model: 'virtio', backend: { model: 'random', path: '/dev/urandom' } }]);
    assert.deepEqual(def.interfaces, [
      {
        type: 'network',
        mac: '52:54:00:6b:3c:58',
        source: 'default',
        model: 'virtio',
        portForwards: [],
        address: { domain: 0, bus: 1, slot: 0, function: 0 },
      },
    ]);
    assert.deepEqual(def.seclabels, []);
  });

  it('reads firmware, nvram, title, description and memory units of a virt-manager UEFI guest', () => {
    const def = parse('virt-manager-uefi.xml');
    assert.equal(def.title, 'Windows 11 (UEFI, secure boot)');
    assert.equal(def.description, 'Created by virt-manager.\nSecond line of the description & an ampersand.');
    assert.equal(def.memoryKiB, 4 * 1024 * 1024);
    assert.equal(def.currentMemoryKiB, 3072 * 1024);
    assert.equal(def.vcpus, 4);
    assert.deepEqual(def.os.loader, { path: '/usr/share/OVMF/OVMF_CODE_4M.ms.fd', readonly: true, type: 'pflash', secure: true });
    assert.deepEqual(def.os.firmware, {
      kind: 'efi',
      features: [
        { name: 'enrolled-keys', enabled: true },
        { name: 'secure-boot', enabled: true },
      ],
    });
    assert.deepEqual(def.os.nvram, {
      path: '/var/lib/libvirt/qemu/nvram/win11-uefi_VARS.fd',
      template: '/usr/share/OVMF/OVMF_VARS_4M.ms.fd',
    });
    assert.deepEqual(def.features, ['acpi', 'apic', 'hyperv', 'vmport', 'smm']);
    assert.deepEqual(def.seclabels, [{ type: 'dynamic', model: 'selinux', relabel: true }]);
  });

  it('fills the defaults of a minimal hand-written domain', () => {
    const def = parseDomainXml(fixture('minimal.xml'), { generateUuid: () => 'ABCDEF01-2345-6789-ABCD-EF0123456789' });
    assert.equal(def.uuid, 'abcdef01-2345-6789-abcd-ef0123456789');
    assert.equal(def.type, 'qemu');
    assert.equal(def.memoryKiB, 250000); // 256 MB = 256,000,000 bytes = 250,000 KiB
    assert.equal(def.currentMemoryKiB, 250000);
    assert.equal(def.vcpus, 1);
    assert.deepEqual(def.os, { type: 'hvm' });
    assert.deepEqual([def.disks, def.chardevs, def.seclabels, def.ignoredDevices, def.features], [[], [], [], [], []]);
    assert.equal(def.emulator, undefined);
    assert.match(parse('minimal.xml').uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('follows a declared qcow2 backing chain and stops at an empty <backingStore/>', () => {
    const [vda, vdb, vdc] = parse('qcow2-backing-chain.xml').disks;
    assert.deepEqual(vda?.backingStore, {
      type: 'file',
      format: 'qcow2',
      path: '/var/lib/svirt/images/mid.qcow2',
      backingStore: { type: 'block', format: 'raw', path: '/dev/vg0/base' },
    });
    assert.equal(vdb?.backingStore, undefined);
    assert.equal(vdb?.target.bus, 'virtio');
    assert.deepEqual([vdc?.type, vdc?.path, vdc?.shareable, vdc?.backingStore], ['block', '/dev/vg0/data', true, undefined]);
  });

  it('reads CD-ROMs and floppies, empty drives included', () => {
    const disks = parse('cdrom-floppy.xml').disks;
    assert.deepEqual(
      disks.map((d) => [d.device, d.target.dev, d.target.bus, d.path ?? null, d.readonly, d.format, d.type]),
      [
        ['floppy', 'fda', 'fdc', '/srv/floppies/dos622.img', false, 'raw', 'file'],
        ['floppy', 'fdb', 'fdc', null, false, 'raw', 'file'],
        ['cdrom', 'hdc', 'ide', '/srv/iso/freedos.iso', true, 'raw', 'file'],
        ['cdrom', 'hdd', 'ide', null, true, 'raw', 'block'],
      ],
    );
  });

  it('reads serial ports and consoles of type file, unix and pty', () => {
    const def = parse('serial-file-unix.xml');
    assert.deepEqual(def.chardevs, [
      {
        element: 'serial',
        type: 'file',
        path: '/var/log/svirt/consoles-serial0.log',
        append: true,
        targetPort: 0,
        seclabels: [{ model: 'dac', relabel: false }],
      },
      { element: 'serial', type: 'unix', path: '/run/svirt/consoles/serial1.sock', mode: 'bind', targetPort: 1, seclabels: [] },
      {
        element: 'console',
        type: 'unix',
        path: '/run/svirt/consoles/virtcon.sock',
        mode: 'connect',
        targetPort: 1,
        targetType: 'virtio',
        seclabels: [],
      },
      { element: 'console', type: 'pty', targetPort: 2, targetType: 'virtio', seclabels: [] },
    ]);
  });

  it("reads <serial type='pipe'> (libvirt's named pipe: QEMU picks PATH.in/.out or PATH) and writes it back", () => {
    const pipe =
      "<serial type='pipe'><source path='/run/vm/console'><seclabel model='dac' relabel='no'/></source><target port='0'/></serial>";
    const def = parseDomainXml(domain('', pipe));
    assert.deepEqual(def.chardevs, [
      { element: 'serial', type: 'pipe', path: '/run/vm/console', targetPort: 0, seclabels: [{ model: 'dac', relabel: false }] },
    ]);
    assert.deepEqual(
      parseDomainXml(formatDomainXml({ ...def, chardevs: [{ ...def.chardevs[0]!, path: '/run/vm/other' }] })).chardevs,
      [{ element: 'serial', type: 'pipe', path: '/run/vm/other', targetPort: 0, seclabels: [{ model: 'dac', relabel: false }] }],
    );
    rejects(domain('', "<serial type='pipe'/>"), 'SVIRT_ERR_XML_INVALID', /serial of type pipe needs <source path=/);
    rejects(domain('', "<serial type='pipe'><source path='p'/></serial>"), 'SVIRT_ERR_PATH_INVALID', /not absolute|absolute/);
  });

  it('reads static, dynamic and none seclabels for selinux, dac and apparmor', () => {
    assert.deepEqual(parse('seclabels-selinux-static.xml').seclabels, [
      { type: 'static', model: 'selinux', relabel: true, label: 'system_u:system_r:svirt_t:s0:c392,c662' },
      { type: 'static', model: 'dac', relabel: false, label: '+107:+107' },
    ]);
    assert.deepEqual(parse('seclabels-dynamic-apparmor.xml').seclabels, [
      { type: 'dynamic', model: 'apparmor', relabel: true },
      { type: 'dynamic', model: 'selinux', relabel: true, baselabel: 'system_u:system_r:my_svirt_t:s0' },
      { type: 'dynamic', model: 'dac', relabel: true },
    ]);
    assert.deepEqual(parse('seclabels-none.xml').seclabels, [
      { type: 'none', model: 'selinux', relabel: false },
      { type: 'none', model: 'apparmor', relabel: false },
      { type: 'none', model: 'dac', relabel: false },
    ]);
  });

  it('keeps the labels of live XML, and drops output-only labels when parsing inactive', () => {
    const live = parse('live-dynamic-labels.xml');
    assert.deepEqual(live.seclabels[0], {
      type: 'dynamic',
      model: 'selinux',
      relabel: true,
      label: 'system_u:system_r:svirt_t:s0:c174,c862',
      imagelabel: 'system_u:object_r:svirt_image_t:s0:c174,c862',
    });
    const inactive = parseDomainXml(fixture('live-dynamic-labels.xml'), { inactive: true });
    assert.deepEqual(inactive.seclabels, [
      { type: 'dynamic', model: 'selinux', relabel: true },
      { type: 'dynamic', model: 'dac', relabel: true },
    ]);
    // A static label is input: kept either way.
    const stat = parseDomainXml(fixture('seclabels-selinux-static.xml'), { inactive: true });
    assert.equal(stat.seclabels[0]?.label, 'system_u:system_r:svirt_t:s0:c392,c662');
    // The pty path of live XML is output, not a chardev path.
    assert.deepEqual(live.chardevs, [{ element: 'serial', type: 'pty', targetPort: 0, seclabels: [] }]);
  });

  it('reads per-disk seclabel overrides', () => {
    const disks = parse('per-disk-seclabels.xml').disks;
    assert.deepEqual(
      disks.map((d) => d.seclabels),
      [
        [
          { model: 'selinux', relabel: true, label: 'system_u:object_r:svirt_image_t:s0:c10,c20' },
          { model: 'dac', relabel: false },
        ],
        [{ relabel: false }],
        [{ model: 'apparmor', relabel: true }],
      ],
    );
  });

  it('keeps paths with spaces, quotes and entities as data', () => {
    const def = parse('path-with-spaces.xml');
    assert.equal(def.name, 'My_VM+2.0');
    assert.equal(def.disks[0]?.path, '/home/alice/VirtualBox VMs/My Disk (copy).img');
    assert.equal(def.os.initrd, '/srv/boot images/initrd & modules.img');
    assert.equal(def.os.cmdline, 'console=ttyS0 root=/dev/vda rw quiet "init=/sbin/my init"');
    assert.equal(def.chardevs[0]?.path, "/home/alice/VM logs/it's serial.log");
  });
});

describe('parseDomainXml: rules', () => {
  it('accepts only kvm and qemu domains', () => {
    rejects("<domain type='xen'><name>t</name></domain>", 'SVIRT_ERR_XML_UNSUPPORTED', /domain type "xen"/);
    rejects('<domain><name>t</name></domain>', 'SVIRT_ERR_XML_INVALID', /missing type=/);
    rejects("<vm type='kvm'/>", 'SVIRT_ERR_XML_INVALID', /root element must be <domain>/);
    rejects(
      "<domain type='kvm'><name>t</name><memory>1</memory><os><type>exe</type></os></domain>",
      'SVIRT_ERR_XML_UNSUPPORTED',
      /os type "exe"/,
    );
    rejects("<domain type='kvm'><name>t</name><memory>1</memory></domain>", 'SVIRT_ERR_XML_INVALID', /missing <os>/);
  });

  it('validates names: 1-64 of [A-Za-z0-9_.+-], not starting with . or -', () => {
    const named = (n: string): string =>
      `<domain type='kvm'><name>${n}</name><memory>1</memory><os><type>hvm</type></os></domain>`;
    assert.equal(parseDomainXml(named('a.b-c_d+e9')).name, 'a.b-c_d+e9');
    assert.equal(parseDomainXml(named('x'.repeat(64))).name, 'x'.repeat(64));
    rejects(named('x'.repeat(65)), 'SVIRT_ERR_XML_INVALID', /longer than 64/);
    rejects(named('.hidden'), 'SVIRT_ERR_XML_INVALID', /starts with '.' or '-'/);
    rejects(named('-opt'), 'SVIRT_ERR_XML_INVALID', /starts with/);
    rejects(named('a b'), 'SVIRT_ERR_XML_INVALID', /domain name "a b" .*contains " "/);
    rejects(named('a&#10;b'), 'SVIRT_ERR_XML_INVALID', /"a\\nb"/);
    rejects(named(''), 'SVIRT_ERR_XML_INVALID', /missing <name>/);
    rejects(named('a</name><name>b'), 'SVIRT_ERR_XML_INVALID', /more than one <name>/);
  });

  it('accepts libvirt UUID forms and canonicalises them', () => {
    assert.equal(canonicalUuid('7A2C1F3E9B4D4E8AA1C23D4E5F607182'), '7a2c1f3e-9b4d-4e8a-a1c2-3d4e5f607182');
    assert.equal(canonicalUuid(' 7a2c1f3e-9b4d-4e8a-a1c2-3d4e5f607182\n'), '7a2c1f3e-9b4d-4e8a-a1c2-3d4e5f607182');
    assert.equal(canonicalUuid('7a2c1f3e9b4d-4e8a-a1c2-3d4e5f607182'), '7a2c1f3e-9b4d-4e8a-a1c2-3d4e5f607182');
    assert.equal(canonicalUuid('7a2c1f3e-9b4d-4e8a-a1c2-3d4e5f60718'), undefined);
    assert.equal(canonicalUuid('7a2c1f3e-9b4d-4e8a-a1c2-3d4e5f6071822'), undefined);
    assert.equal(canonicalUuid('7-a2c1f3e9b4d4e8aa1c23d4e5f607182'), undefined);
    assert.equal(canonicalUuid('{7a2c1f3e-9b4d-4e8a-a1c2-3d4e5f607182}'), undefined);
  });

  it('converts memory units the way libvirt does, rounding up to KiB', () => {
    const mem = (unit: string, v: string): number =>
      parseDomainXml(`<domain type='kvm'><name>t</name><memory unit='${unit}'>${v}</memory><os><type>hvm</type></os></domain>`)
        .memoryKiB;
    assert.equal(mem('b', '1'), 1);
    assert.equal(mem('bytes', '1025'), 2);
    assert.equal(mem('KB', '1024'), 1000);
    assert.equal(mem('k', '7'), 7);
    assert.equal(mem('KiB', '7'), 7);
    assert.equal(mem('MB', '1'), 977);
    assert.equal(mem('M', '1'), 1024);
    assert.equal(mem('MiB', '1'), 1024);
    assert.equal(mem('GB', '1'), 976563);
    assert.equal(mem('G', '2'), 2097152);
    assert.equal(mem('GiB', '2'), 2097152);
    assert.equal(mem('TB', '1'), 976562500);
    assert.equal(mem('T', '1'), 1073741824);
    assert.equal(mem('TiB', '1'), 1073741824);
    assert.equal(unitBytes('kib'), 1024n, 'case-insensitive, as virScaleInteger');
    assert.equal(unitBytes('KiBB'), undefined);
    assert.equal(unitBytes(''), undefined);
    rejects(
      domain('').replace('<memory>1024</memory>', "<memory unit='MiB'>1.5</memory>"),
      'SVIRT_ERR_XML_INVALID',
      /<memory> at line 1: "1.5"/,
    );
    rejects(domain('').replace('<memory>1024</memory>', '<memory>0</memory>'), 'SVIRT_ERR_XML_INVALID', /must be positive/);
    rejects(
      domain('').replace('<memory>1024</memory>', "<memory unit='EiB'>99999</memory>"),
      'SVIRT_ERR_XML_INVALID',
      /too large/,
    );
    rejects(domain('').replace('<memory>1024</memory>', ''), 'SVIRT_ERR_XML_INVALID', /missing <memory>/);
  });

  it('refuses currentMemory above memory, and a bad vcpu count', () => {
    rejects(
      domain('<currentMemory>2048</currentMemory>'),
      'SVIRT_ERR_XML_INVALID',
      /currentMemory \(2048 KiB\) is larger than memory \(1024 KiB\)/,
    );
    assert.equal(parseDomainXml(domain("<currentMemory unit='KiB'>512</currentMemory>")).currentMemoryKiB, 512);
    rejects(domain('<vcpu>0</vcpu>'), 'SVIRT_ERR_XML_INVALID', /at least 1/);
    rejects(domain('<vcpu>two</vcpu>'), 'SVIRT_ERR_XML_INVALID', /<vcpu> at line 1: vcpu count "two"/);
    assert.equal(parseDomainXml(domain("<vcpu placement='static'> 8 </vcpu>")).vcpus, 8);
  });

  it('derives the disk bus from the target name like libvirt', () => {
    const bus = (dev: string, device = 'disk'): string | undefined =>
      parseDomainXml(domain('', `<disk device='${device}'><source file='/i'/><target dev='${dev}'/></disk>`)).disks[0]?.target
        .bus;
    assert.equal(bus('vda'), 'virtio');
    assert.equal(bus('hda'), 'ide');
    assert.equal(bus('sda'), 'scsi');
    assert.equal(bus('fda', 'floppy'), 'fdc');
    assert.equal(bus('xvda'), 'xen');
    rejects(
      domain('', "<disk device='floppy'><target dev='fda' bus='ide'/></disk>"),
      'SVIRT_ERR_XML_INVALID',
      /floppy must be on bus 'fdc'/,
    );
    rejects(domain('', "<disk><source file='/i'/><target dev='vda' bus='pcie'/></disk>"), 'SVIRT_ERR_XML_INVALID', /bus="pcie"/);
    rejects(
      domain('', "<disk><source file='/i'/><target dev='nvme0n1'/></disk>"),
      'SVIRT_ERR_XML_INVALID',
      /not a disk target name/,
    );
    rejects(domain('', "<disk><source file='/i'/></disk>"), 'SVIRT_ERR_XML_INVALID', /missing <target/);
  });

  it('checks disks: device, source, duplicates, formats', () => {
    rejects(domain('', "<disk device='lun'><target dev='sda'/></disk>"), 'SVIRT_ERR_XML_UNSUPPORTED', /device='lun'/);
    rejects(domain('', "<disk type='volume'><target dev='vda'/></disk>"), 'SVIRT_ERR_XML_UNSUPPORTED', /disk type "volume"/);
    rejects(domain('', "<disk type='nvme'><target dev='vda'/></disk>"), 'SVIRT_ERR_XML_UNSUPPORTED', /disk type "nvme"/);
    rejects(domain('', "<disk><target dev='vda'/></disk>"), 'SVIRT_ERR_XML_INVALID', /disk 'vda' has no <source file=/);
    rejects(
      domain('', "<disk type='block'><source file='/dev/sdz'/><target dev='vda'/></disk>"),
      'SVIRT_ERR_XML_INVALID',
      /takes <source dev=/,
    );
    rejects(
      domain('', "<disk><source file='/a'/><target dev='vda'/></disk>\n<disk><source file='/b'/><target dev='vda'/></disk>"),
      'SVIRT_ERR_XML_INVALID',
      /<disk> at line 2: target "vda" is already used by the <disk> at line 1/,
    );
    rejects(
      domain('', "<disk><driver type='iso'/><source file='/a'/><target dev='vda'/></disk>"),
      'SVIRT_ERR_XML_UNSUPPORTED',
      /format "iso"/,
    );
    const noFormat =
      "<disk><driver type='qcow2'/><source file='/a'/><backingStore type='file'><source file='/b'/></backingStore><target dev='vda'/></disk>";
    rejects(
      domain('', noFormat),
      'SVIRT_ERR_XML_INVALID',
      /missing <format type=\.\.\.> \(backing formats are declared, never probed\)/,
    );
    const net =
      "<disk><driver type='qcow2'/><source file='/a'/><backingStore type='network'><format type='raw'/><source protocol='nbd'/></backingStore><target dev='vda'/></disk>";
    rejects(domain('', net), 'SVIRT_ERR_XML_UNSUPPORTED', /backing store type "network"/);
    const rawLayer =
      "<disk><driver type='qcow2'/><source file='/a'/><backingStore type='file'><format type='raw'/><source file='/b'/><backingStore type='file'><format type='raw'/><source file='/c'/></backingStore></backingStore><target dev='vda'/></disk>";
    rejects(domain('', rawLayer), 'SVIRT_ERR_XML_INVALID', /a raw image has no backing file/);
  });

  it('validates seclabel combinations like libvirt', () => {
    const bad: Array<[string, RegExp]> = [
      ["<seclabel type='none' relabel='yes'/>", /relabel='yes' is not compatible with type='none'/],
      ["<seclabel type='static' model='selinux'/>", /type='static' needs a <label>/],
      ["<seclabel type='none' model='selinux'><label>x</label></seclabel>", /type='none' takes no <label>/],
      [
        "<seclabel type='static' model='selinux'><label>a</label><baselabel>b</baselabel></seclabel>",
        /<baselabel> is only for type='dynamic'/,
      ],
      ["<seclabel type='magic'/>", /type="magic" must be one of dynamic, static, none/],
      ["<seclabel type='dynamic' relabel='maybe'/>", /relabel="maybe" must be 'yes' or 'no'/],
      ["<seclabel type='dynamic' model='selinux'/><seclabel type='dynamic'/>", /model= is required when there is more than one/],
      ["<seclabel type='dynamic' model='dac'/><seclabel type='none' model='dac'/>", /model "dac" is already defined/],
      ["<seclabel type='static' model='selinux'><label>a&#10;b</label></seclabel>", /control character/],
    ];
    for (const [xml, pattern] of bad) rejects(domain(xml), 'SVIRT_ERR_XML_INVALID', pattern);
    assert.deepEqual(parseDomainXml(domain('<seclabel/>')).seclabels, [{ type: 'dynamic', relabel: true }]);
    assert.deepEqual(parseDomainXml(domain("<seclabel type='none'/>")).seclabels, [{ type: 'none', relabel: false }]);
    assert.deepEqual(parseDomainXml(domain("<seclabel type='dynamic' model='none'><label>x</label></seclabel>")).seclabels, [
      { type: 'dynamic', model: 'none', relabel: true },
    ]);
    const dev =
      "<disk><source file='/a'><seclabel model='selinux' relabel='no'><label>x</label></seclabel></source><target dev='vda'/></disk>";
    rejects(domain('', dev), 'SVIRT_ERR_XML_INVALID', /<label> cannot be given when relabel='no'/);
    const twice = "<disk><source file='/a'><seclabel model='dac'/><seclabel model='dac'/></source><target dev='vda'/></disk>";
    rejects(domain('', twice), 'SVIRT_ERR_XML_INVALID', /already defined for this device/);
  });

  it('treats the first serial-target console as serial 0 alias only when a serial exists', () => {
    const lone = parseDomainXml(domain('', "<console type='pty'><target type='serial' port='0'/></console>"));
    assert.deepEqual(lone.chardevs, [{ element: 'console', type: 'pty', targetPort: 0, targetType: 'serial', seclabels: [] }]);
    const second = "<serial type='pty'/><console type='pty'/><console type='pty'><target type='serial'/></console>";
    rejects(domain('', second), 'SVIRT_ERR_XML_INVALID', /only the first <console> can target a serial port/);
    rejects(
      domain('', "<serial type='tcp'><source mode='bind' host='0.0.0.0' service='4555'/></serial>"),
      'SVIRT_ERR_XML_UNSUPPORTED',
      /serial type "tcp"/,
    );
    rejects(domain('', "<serial type='file'/>"), 'SVIRT_ERR_XML_INVALID', /serial of type file needs <source path=/);
    rejects(
      domain('', "<serial type='unix'><source mode='listen' path='/s'/></serial>"),
      'SVIRT_ERR_XML_INVALID',
      /mode="listen"/,
    );
    rejects(domain('', "<serial><target port='-1'/></serial>"), 'SVIRT_ERR_XML_INVALID', /port "-1"/);
  });

  it('treats a loader or nvram without a path (firmware auto-selection) as absent', () => {
    const def = parseDomainXml(
      "<domain type='kvm'><name>t</name><memory>1</memory><os firmware='efi'><type>hvm</type><loader secure='yes'/><nvram template='/usr/share/OVMF/VARS.fd'/></os></domain>",
    );
    assert.deepEqual(def.os, { type: 'hvm', firmware: { kind: 'efi', features: [] } });
    const modern = parseDomainXml(
      "<domain type='kvm'><name>t</name><memory>1</memory><os><type>hvm</type><loader type='rom'>/fw.bin</loader><nvram type='file'><source file='/var/nv.fd'/></nvram></os></domain>",
    );
    assert.deepEqual(modern.os.loader, { path: '/fw.bin', readonly: false, type: 'rom' });
    assert.deepEqual(modern.os.nvram, { path: '/var/nv.fd' });
    rejects(
      "<domain type='kvm'><name>t</name><memory>1</memory><os><type>hvm</type><nvram type='network'><source protocol='iscsi'/></nvram></os></domain>",
      'SVIRT_ERR_XML_UNSUPPORTED',
      /nvram type "network"/,
    );
  });

  it('errors carry the element and line in details, never a stack as message', () => {
    const err = rejects(domain('', "\n<disk type='dir'><target dev='vda'/></disk>"), 'SVIRT_ERR_XML_UNSUPPORTED', /line 2/);
    assert.deepEqual({ element: err.details['element'], line: err.details['line'] }, { element: 'disk', line: 2 });
    assert.ok(!err.message.includes('\n'));
  });
});

describe('parseDomainXml: <vcpu current>', () => {
  const xml = (vcpu: string) =>
    `<domain type='qemu'><name>c</name><memory unit='MiB'>64</memory>${vcpu}<os><type>hvm</type></os></domain>`;
  it('keeps a current count below the maximum, drops one equal to it, refuses 0 and more', () => {
    const d = parseDomainXml(xml("<vcpu current='2'>4</vcpu>"));
    assert.equal(d.vcpus, 4);
    assert.equal(d.vcpusCurrent, 2);
    assert.match(formatDomainXml(d), /<vcpu current='2'>4<\/vcpu>/);
    const all = parseDomainXml(xml("<vcpu current='4'>4</vcpu>"));
    assert.equal(all.vcpusCurrent, undefined);
    assert.match(formatDomainXml(all), /<vcpu>4<\/vcpu>/);
    for (const bad of ["<vcpu current='5'>4</vcpu>", "<vcpu current='0'>4</vcpu>"]) {
      assert.throws(() => parseDomainXml(xml(bad)), /current vcpu count \(\d\) must be between 1 and the maximum \(4\)/);
    }
  });
});
