import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import type { DiskDef, DomainDef, XmlElement, XmlNode } from './domain-def.js';
import { formatDomainXml } from './format-domain-xml.js';
import { parseDomainXml } from './parse-domain-xml.js';
import { parseXml } from './xml.js';

const DOMAINS = new URL('../../../test/fixtures/domains/', import.meta.url);
const GOLDEN = new URL('../../../test/fixtures/domains/formatted/', import.meta.url);
const FIXTURES = readdirSync(DOMAINS)
  .filter((n) => n.endsWith('.xml'))
  .sort();
const FIXED_UUID = (): string => '00000000-0000-4000-8000-000000000001';

function parse(name: string): DomainDef {
  return parseDomainXml(readFileSync(new URL(name, DOMAINS), 'utf8'), { generateUuid: FIXED_UUID });
}

/** The typed fields, with ignored devices by name only (their lines move when re-indented). */
function typed(def: DomainDef): unknown {
  const { source, ignoredDevices, ...rest } = def;
  void source;
  return { ...rest, ignoredDevices: ignoredDevices.map((d) => d.name) };
}

function stripLines(node: XmlNode): unknown {
  if (node.kind !== 'element') return node;
  return { kind: 'element', name: node.name, attrs: node.attrs, children: node.children.map(stripLines) };
}

/** Every `element@attr=value` and element name of a tree. */
function inventory(el: XmlElement, out: string[] = []): string[] {
  out.push(el.name);
  for (const [k, v] of el.attrs) out.push(`${el.name}@${k}=${v}`);
  for (const c of el.children) {
    if (c.kind === 'element') inventory(c, out);
    else if (c.kind === 'comment') out.push(`<!--${c.text}-->`);
  }
  return out;
}

function roundTrip(def: DomainDef): DomainDef {
  return parseDomainXml(formatDomainXml(def));
}

describe('formatDomainXml: round trip', () => {
  for (const name of FIXTURES) {
    it(`${name}: parse → format → parse gives the same DomainDef`, () => {
      const def = parse(name);
      const again = roundTrip(def);
      assert.deepEqual(typed(again), typed(def));
      // Formatting is stable: a second pass changes nothing at all.
      assert.equal(formatDomainXml(again), formatDomainXml(def));
      assert.deepEqual(stripLines(roundTrip(again).source), stripLines(again.source));
    });

    it(`${name}: unknown elements, attributes and comments survive`, () => {
      const def = parse(name);
      const out = inventory(parseXml(formatDomainXml(def)));
      // svirt rewrites memory units to KiB, as virsh does.
      const rewritten = /^(memory|currentMemory)@unit=/;
      for (const item of inventory(def.source)) {
        if (!rewritten.test(item)) assert.ok(out.includes(item), `${item} missing from the output`);
      }
    });
  }

  it('keeps foreign namespaces, metadata and qemu:commandline verbatim', () => {
    const text = formatDomainXml(parse('virt-install-guest.xml'));
    for (const s of [
      "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>",
      "<libosinfo:os id='http://fedoraproject.org/fedora/39'/>",
      "<driver name='qemu' type='qcow2' discard='unmap'/>",
      "<qemu:arg value='-set'/>",
      "<timer name='hpet' present='no'/>",
      "<backend model='random'>/dev/urandom</backend>",
    ]) {
      assert.ok(text.includes(s), s);
    }
  });

  it('matches the golden output for formatted fixtures', () => {
    for (const name of readdirSync(GOLDEN).filter((n) => n.endsWith('.xml'))) {
      const expected = readFileSync(new URL(name, GOLDEN), 'utf8');
      assert.equal(formatDomainXml(parse(name)), expected, name);
    }
  });
});

describe('formatDomainXml: typed fields win', () => {
  it('writes name, uuid (inserted after name), title, description, memory in KiB and vcpu', () => {
    const def = parse('minimal.xml');
    const text = formatDomainXml({
      ...def,
      name: 'renamed',
      title: 'A & B',
      description: 'line 1\nline <2>',
      vcpus: 3,
      currentMemoryKiB: 1000,
    });
    assert.match(
      text,
      /<name>renamed<\/name>\n {2}<uuid>00000000-0000-4000-8000-000000000001<\/uuid>\n {2}<title>A &amp; B<\/title>\n {2}<description>line 1\nline &lt;2&gt;<\/description>/,
    );
    assert.ok(
      text.includes(
        "<memory unit='KiB'>250000</memory>\n  <currentMemory unit='KiB'>1000</currentMemory>\n  <vcpu placement='static'>3</vcpu>",
      ),
    );
    const back = parseDomainXml(text);
    assert.deepEqual(
      [back.name, back.title, back.description, back.vcpus, back.currentMemoryKiB],
      ['renamed', 'A & B', 'line 1\nline <2>', 3, 1000],
    );
    const { title, description, ...untitled } = parse('virt-manager-uefi.xml');
    void title;
    void description;
    const plain = formatDomainXml(untitled);
    assert.ok(!plain.includes('<title>') && !plain.includes('<description>'));
  });

  it('formats a def whose source is a bare <domain> into complete XML', () => {
    const def = parse('per-disk-seclabels.xml');
    const bare: DomainDef = {
      ...def,
      source: { kind: 'element', name: 'domain', attrs: [], children: [] },
      emulator: '/usr/bin/qemu-system-x86_64',
    };
    const text = formatDomainXml(bare);
    assert.deepEqual(typed(parseDomainXml(text)), typed(bare));
    assert.match(text, /^<domain type='kvm'>\n {2}<name>overrides<\/name>\n {2}<uuid>/);
    assert.ok(
      text.includes(
        "</devices>\n  <seclabel type='dynamic' model='selinux' relabel='yes'/>\n  <seclabel type='dynamic' model='dac' relabel='yes'/>\n</domain>",
      ),
      text,
    );
    // ignoredDevices describes the source tree: with a bare source there is none.
    const withOs: DomainDef = {
      ...parse('virt-manager-uefi.xml'),
      interfaces: [],
      ignoredDevices: [],
      source: { kind: 'element', name: 'domain', attrs: [], children: [] },
    };
    assert.deepEqual(typed(roundTrip(withOs)), typed(withOs));
  });

  it('replaces domain seclabels with libvirt-shaped ones after <devices>', () => {
    const def = parse('seclabels-dynamic-apparmor.xml'); // one <seclabel> sits before <devices>
    const live: DomainDef = {
      ...def,
      seclabels: [
        {
          type: 'dynamic',
          model: 'selinux',
          relabel: true,
          label: 'system_u:system_r:svirt_t:s0:c1,c2',
          imagelabel: 'system_u:object_r:svirt_image_t:s0:c1,c2',
        },
        { type: 'static', model: 'dac', relabel: false, label: '+107:+107' },
        { type: 'none', model: 'apparmor', relabel: false },
      ],
    };
    const text = formatDomainXml(live);
    assert.ok(
      text.endsWith(
        '  </devices>\n' +
          "  <seclabel type='dynamic' model='selinux' relabel='yes'>\n" +
          '    <label>system_u:system_r:svirt_t:s0:c1,c2</label>\n' +
          '    <imagelabel>system_u:object_r:svirt_image_t:s0:c1,c2</imagelabel>\n' +
          '  </seclabel>\n' +
          "  <seclabel type='static' model='dac' relabel='no'>\n" +
          '    <label>+107:+107</label>\n' +
          '  </seclabel>\n' +
          "  <seclabel type='none' model='apparmor'/>\n" +
          '</domain>\n',
      ),
      text,
    );
    assert.deepEqual(parseDomainXml(text).seclabels, live.seclabels);
    assert.ok(!formatDomainXml({ ...def, seclabels: [] }).includes('seclabel'));
  });

  it('drops output-only labels of a def parsed as inactive', () => {
    const text = readFileSync(new URL('live-dynamic-labels.xml', DOMAINS), 'utf8');
    const out = formatDomainXml(parseDomainXml(text, { inactive: true }));
    assert.ok(!out.includes('<label>') && !out.includes('<imagelabel>'));
    assert.ok(out.includes("<seclabel type='dynamic' model='selinux' relabel='yes'/>"));
  });

  it('appends a new disk after the last disk and removes a detached one', () => {
    const def = parse('virt-install-guest.xml');
    const added: DiskDef = {
      type: 'file',
      device: 'disk',
      format: 'qcow2',
      path: '/var/lib/svirt/images/extra disk.qcow2',
      backingStore: { type: 'file', format: 'raw', path: '/var/lib/svirt/images/base.raw' },
      target: { dev: 'vdb', bus: 'virtio' },
      readonly: false,
      shareable: true,
      seclabels: [{ model: 'selinux', relabel: false }],
    };
    const text = formatDomainXml({ ...def, disks: [...def.disks, added] });
    const back = parseDomainXml(text);
    assert.deepEqual(back.disks, [...def.disks, added]);
    assert.ok(text.indexOf("<target dev='vdb'") < text.indexOf('<controller'), 'new disk right after the last disk');
    assert.ok(
      text.includes(
        "<disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n" +
          "      <source file='/var/lib/svirt/images/extra disk.qcow2'>\n        <seclabel model='selinux' relabel='no'/>\n      </source>\n" +
          "      <backingStore type='file'>\n        <format type='raw'/>\n        <source file='/var/lib/svirt/images/base.raw'/>\n        <backingStore/>\n      </backingStore>\n" +
          "      <target dev='vdb' bus='virtio'/>\n      <shareable/>\n    </disk>",
      ),
      text,
    );

    const detached = formatDomainXml({ ...def, disks: def.disks.filter((d) => d.target.dev !== 'vda') });
    assert.ok(!detached.includes('fedora39.qcow2'));
    assert.deepEqual(
      parseDomainXml(detached).disks.map((d) => d.target.dev),
      ['sda'],
    );
    // The guest's other devices do not move.
    assert.deepEqual(
      parseDomainXml(detached).ignoredDevices.map((d) => d.name),
      def.ignoredDevices.map((d) => d.name),
    );
  });

  it('changes CD-ROM media in place, keeping the rest of the element', () => {
    const def = parse('virt-manager-uefi.xml');
    const cd = def.disks[1];
    assert.ok(cd);
    const { path, ...ejected } = cd;
    void path;
    const out = formatDomainXml({ ...def, disks: [def.disks[0] as DiskDef, ejected] });
    assert.ok(!out.includes('Win11_23H2.iso'));
    assert.ok(out.includes("<source startupPolicy='optional'/>"), 'other source attributes kept');
    assert.equal(parseDomainXml(out).disks[1]?.path, undefined);

    const inserted = formatDomainXml({ ...def, disks: [def.disks[0] as DiskDef, { ...cd, path: '/srv/iso/new media.iso' }] });
    assert.ok(inserted.includes("<source file='/srv/iso/new media.iso' startupPolicy='optional'/>"));

    const empty = parse('virt-install-guest.xml');
    const sda = empty.disks[1] as DiskDef;
    const filled = formatDomainXml({ ...empty, disks: [empty.disks[0] as DiskDef, { ...sda, path: '/srv/iso/fedora.iso' }] });
    assert.ok(
      filled.includes(
        "<driver name='qemu' type='raw'/>\n      <source file='/srv/iso/fedora.iso'/>\n      <target dev='sda' bus='sata'/>",
      ),
      filled,
    );
  });

  it('updates readonly, shareable, format, bus, type and backing chain of an existing disk', () => {
    const def = parse('qcow2-backing-chain.xml');
    const [vda, vdb, vdc] = def.disks as DiskDef[];
    assert.ok(vda && vdb && vdc);
    const changed: DomainDef = {
      ...def,
      disks: [
        { ...vda, backingStore: { type: 'file', format: 'qcow2', path: '/var/lib/svirt/images/other.qcow2' }, readonly: true },
        { ...vdb, format: 'raw', target: { dev: 'vdb', bus: 'scsi' } },
        { ...vdc, type: 'file', path: '/var/lib/svirt/images/data.img', shareable: false },
      ],
    };
    const text = formatDomainXml(changed);
    assert.deepEqual(typed(parseDomainXml(text)), typed(changed));
    assert.ok(text.includes("<source file='/var/lib/svirt/images/overlay.qcow2' index='3'/>"), 'unchanged source untouched');
    assert.ok(!text.includes('/dev/vg0/data') && !text.includes('mid.qcow2'));
    assert.ok(text.includes("<driver name='qemu' type='raw' cache='none'/>"), 'driver attributes kept');
  });

  it('writes os fields, loader, nvram and features', () => {
    const def = parse('virt-manager-uefi.xml');
    const changed: DomainDef = {
      ...def,
      os: {
        type: 'hvm',
        machine: 'q35',
        kernel: '/boot/vmlinuz',
        initrd: '/boot/initrd.img',
        cmdline: 'console=ttyS0',
        dtb: '/boot/x.dtb',
        loader: { path: '/usr/share/OVMF/OVMF_CODE.fd', readonly: false },
        nvram: { path: '/var/lib/svirt/nvram/x.fd' },
      },
      features: ['smm', 'acpi', 'pae'],
    };
    const text = formatDomainXml(changed);
    assert.deepEqual(typed(parseDomainXml(text)), typed(changed));
    assert.ok(text.includes("<type machine='q35'>hvm</type>"));
    // secure= and <os firmware> are typed now (LoaderDef.secure, OsDef.firmware): absent removes them.
    assert.ok(text.includes("<loader readonly='no'>/usr/share/OVMF/OVMF_CODE.fd</loader>"), text);
    assert.ok(!text.includes('firmware'), text);
    assert.ok(text.includes("<features>\n    <smm state='on'/>\n    <acpi/>\n    <pae/>\n  </features>"), text);
    assert.ok(text.indexOf('<kernel>') > text.indexOf('<nvram') && text.indexOf('<kernel>') < text.indexOf('<boot '));
    const bare = formatDomainXml({ ...def, os: { type: 'hvm' }, features: [] });
    assert.ok(!bare.includes('<loader') && !bare.includes('<nvram') && !bare.includes('<features'));
    assert.ok(bare.includes("<bootmenu enable='yes'/>"));
  });

  it('updates chardevs and keeps the alias console in step with serial 0', () => {
    const def = parse('serial-file-unix.xml');
    const [s0, s1, c1] = def.chardevs;
    assert.ok(s0 && s1 && c1);
    const moved: DomainDef = { ...def, chardevs: [{ ...s0, path: '/var/log/svirt/new.log' }, s1, c1] };
    const text = formatDomainXml(moved);
    assert.deepEqual(typed(parseDomainXml(text)), typed(moved));
    assert.ok(text.includes("<console type='file'>\n      <source path='/var/log/svirt/new.log' append='on'>"), text);
    assert.ok(!text.includes("type='virtio' port='2'"), 'dropped console removed');

    const noSerial = formatDomainXml({ ...def, chardevs: [c1] });
    assert.deepEqual(parseDomainXml(noSerial).chardevs, [c1]);

    const added = formatDomainXml({
      ...parse('minimal.xml'),
      chardevs: [{ element: 'serial', type: 'unix', path: '/run/s.sock', mode: 'connect', targetPort: 0, seclabels: [] }],
    });
    assert.ok(
      added.includes(
        "<serial type='unix'>\n      <source mode='connect' path='/run/s.sock'/>\n      <target port='0'/>\n    </serial>",
      ),
      added,
    );
  });

  it('refuses to write typed fields that would not read back', () => {
    const def = parse('minimal.xml');
    assert.throws(() => formatDomainXml({ ...def, name: 'bad/name' }), { code: 'SVIRT_ERR_XML_INVALID' });
    assert.throws(() => formatDomainXml({ ...def, uuid: 'nope' }), { code: 'SVIRT_ERR_XML_INVALID' });
    assert.throws(() => formatDomainXml({ ...def, memoryKiB: 0, currentMemoryKiB: 0 }), { code: 'SVIRT_ERR_XML_INVALID' });
    assert.throws(() => formatDomainXml({ ...def, vcpus: 1.5 }), { code: 'SVIRT_ERR_XML_INVALID' });
    const disk: DiskDef = {
      type: 'file',
      device: 'disk',
      format: 'raw',
      path: 'relative.img',
      target: { dev: 'vda', bus: 'virtio' },
      readonly: false,
      shareable: false,
      seclabels: [],
    };
    assert.throws(() => formatDomainXml({ ...def, disks: [disk] }), {
      code: 'SVIRT_ERR_PATH_INVALID',
      message: /"relative.img" for disk 'vda'/,
    });
    assert.throws(() => formatDomainXml({ ...def, os: { type: 'hvm', kernel: '/boot/x\n' } }), {
      code: 'SVIRT_ERR_PATH_INVALID',
    });
    const ok = { ...disk, path: '/ok.img' };
    assert.throws(() => formatDomainXml({ ...def, disks: [ok, ok] }), {
      code: 'SVIRT_ERR_XML_INVALID',
      message: /two disks use target "vda"/,
    });
    assert.throws(() => formatDomainXml({ ...def, disks: [{ ...ok, target: { dev: "vda'/>", bus: 'virtio' } }] }), {
      code: 'SVIRT_ERR_XML_INVALID',
    });
    assert.throws(() => formatDomainXml({ ...def, title: 'two\nlines' }), { code: 'SVIRT_ERR_XML_INVALID' });
    const label = { type: 'static', model: 'selinux', relabel: false, label: 'a\nb' } as const;
    assert.throws(() => formatDomainXml({ ...def, seclabels: [label] }), {
      code: 'SVIRT_ERR_XML_INVALID',
      message: /control character/,
    });
  });
});
