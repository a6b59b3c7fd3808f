import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SvirtError } from '../errors.js';
import { formatDomainXml } from './format-domain-xml.js';
import { completeMachine, hotplugAddress } from './machine-defaults.js';
import { parseDomainXml } from './parse-domain-xml.js';

const UUID = '00000000-0000-4000-8000-00000000000a';

function xml(machine: string, devices: string, os = ''): string {
  return `<domain type='qemu'><name>m</name><uuid>${UUID}</uuid><memory>65536</memory><os><type machine='${machine}'>hvm</type>${os}</os><devices>${devices}</devices></domain>`;
}

const vda = "<disk type='file'><source file='/i/a.img'/><target dev='vda'/></disk>";
const sda = "<disk type='file'><source file='/i/b.img'/><target dev='sda' bus='sata'/></disk>";
const sdb = "<disk type='file'><source file='/i/c.img'/><target dev='sdb'/></disk>";

describe('completeMachine', () => {
  it("adds libvirt's implicit devices on q35: pcie-root, qemu-xhci, the built-in SATA, virtio-scsi, a virtio balloon", () => {
    const def = completeMachine(parseDomainXml(xml('q35', vda + sda + sdb)));
    const c = def.controllers ?? [];
    const find = (type: string, model?: string): unknown =>
      c.find((x) => x.type === type && (model === undefined || x.model === model));
    assert.ok(find('pci', 'pcie-root'));
    assert.ok(find('usb', 'qemu-xhci'));
    assert.deepEqual((find('sata') as { address: unknown }).address, { domain: 0, bus: 0, slot: 0x1f, function: 2 });
    assert.ok(find('scsi', 'virtio-scsi'));
    assert.equal(def.memballoon?.model, 'virtio');
    for (const x of [def.disks[0]?.address, def.memballoon?.address]) assert.equal(x?.slot, 0, 'alone in a root port');
  });

  it('on i440fx: pci-root, the PIIX3 IDE and USB at 00:01.x, devices on pci.0 from slot 3', () => {
    const def = completeMachine(parseDomainXml(xml('pc', vda)));
    const usb = def.controllers?.find((x) => x.type === 'usb');
    assert.deepEqual([usb?.model, usb?.address?.slot, usb?.address?.function], ['piix3-uhci', 1, 2]);
    assert.deepEqual(def.disks[0]?.address, { domain: 0, bus: 0, slot: 3, function: 0 });
    assert.deepEqual(def.memballoon?.address, { domain: 0, bus: 0, slot: 4, function: 0 });
    assert.ok(!def.controllers?.some((x) => x.model === 'pcie-root-port'));
  });

  it('is idempotent and what it writes reads back the same (define → start)', () => {
    const once = completeMachine(parseDomainXml(xml('q35', vda + "<rng model='virtio'><backend model='builtin'/></rng>")));
    const text = formatDomainXml(once);
    const back = parseDomainXml(text);
    const twice = completeMachine(back);
    assert.equal(formatDomainXml(twice), text);
    assert.match(
      text,
      /<rng model='virtio'>\n\s+<backend model='builtin'\/>\n\s+<address type='pci' domain='0x0000' bus='0x0\d' slot='0x00' function='0x0'\/>/,
    );
  });

  it('keeps model none and given addresses; refuses IDE on q35 and a PCI address on a SATA disk', () => {
    const def = completeMachine(
      parseDomainXml(
        xml(
          'q35',
          `<memballoon model='none'/><controller type='usb' model='none'/>` +
            vda.replace('</disk>', "<address type='pci' bus='0x07' slot='0'/></disk>"),
        ),
      ),
    );
    assert.equal(def.memballoon?.model, 'none');
    assert.equal(def.controllers?.find((c) => c.type === 'usb')?.model, 'none');
    assert.equal(def.disks[0]?.address?.bus, 7);
    assert.throws(
      () => completeMachine(parseDomainXml(xml('q35', "<disk type='file'><source file='/i/x'/><target dev='hda'/></disk>"))),
      (e: unknown) => e instanceof SvirtError && /IDE disks are unsupported on q35/.test(e.message),
    );
    assert.throws(
      () => completeMachine(parseDomainXml(xml('q35', sda.replace('</disk>', "<address type='pci' bus='0' slot='9'/></disk>")))),
      (e: unknown) => e instanceof SvirtError && /not a PCI device/.test(e.message),
    );
  });

  const display =
    "<filesystem type='mount'><driver type='virtiofs'/><source dir='/srv/s'/><target dir='s'/></filesystem>" +
    "<graphics type='vnc'/><input type='tablet' bus='virtio'/><input type='mouse' bus='ps2'/><input type='tablet' bus='usb'/>";
  const shared = "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>";
  const withMemory = (text: string): string => text.replace('<os>', `${shared}<os>`);

  it("places videos (the primary at libvirt's slot), virtio inputs and shared folders; USB and PS/2 inputs are no PCI devices", () => {
    const pc = completeMachine(parseDomainXml(withMemory(xml('pc', vda + display))));
    assert.deepEqual(
      pc.videos,
      [{ model: 'vga', address: { domain: 0, bus: 0, slot: 2, function: 0 } }],
      'a display gets VGA at 00:02.0',
    );
    assert.deepEqual(
      pc.inputs?.map((i) => i.address?.slot),
      [6, undefined, undefined],
    );
    assert.equal(pc.filesystems?.[0]?.address?.slot, 5);
    const q35 = completeMachine(
      parseDomainXml(
        withMemory(
          xml('q35', vda + display + "<video><model type='virtio'/></video><video><model type='qxl' primary='yes'/></video>"),
        ),
      ),
    );
    const [secondary, primary] = q35.videos ?? [];
    assert.deepEqual(primary?.address, { domain: 0, bus: 0, slot: 1, function: 0 }, 'the primary video on pcie.0 slot 1');
    assert.equal(secondary?.address?.slot, 0, 'a secondary video in a root port of its own');
    assert.notEqual(secondary?.address?.bus, 0);
    const ports = [q35.filesystems?.[0]?.address?.bus, secondary?.address?.bus, q35.inputs?.[0]?.address?.bus];
    assert.equal(new Set(ports).size, 3, `each in its own root port: ${ports.join(' ')}`);
    const text = formatDomainXml(q35);
    assert.equal(formatDomainXml(completeMachine(parseDomainXml(text))), text, 'written, read back, the same');
    assert.match(
      text,
      /<input type='tablet' bus='virtio'>\n\s+<address type='pci' domain='0x0000' bus='0x0[0-9a-f]' slot='0x00'/,
    );
    assert.match(text, /<target dir='s'\/>\n\s+<address type='pci'/);
  });

  it('gives the primary video the next free slot when its own is taken, and honours a given one', () => {
    const taken = vda.replace('</disk>', "<address type='pci' bus='0' slot='2'/></disk>");
    const def = completeMachine(parseDomainXml(xml('pc', taken + "<video><model type='cirrus'/></video>")));
    assert.equal(def.disks[0]?.address?.slot, 2);
    assert.equal(def.videos?.[0]?.address?.slot, 4, 'after the balloon at 3');
    const given = completeMachine(
      parseDomainXml(
        xml('pc', "<video><model type='vga'/><address type='pci' bus='0' slot='9'/></video><video><model type='none'/></video>"),
      ),
    );
    assert.deepEqual(
      given.videos?.map((v) => v.address?.slot),
      [9, undefined],
      'model none is no device',
    );
    assert.throws(
      () => parseDomainXml(xml('pc', "<input type='tablet' bus='usb'><address type='pci' bus='0' slot='9'/></input>")),
      (e: unknown) => e instanceof SvirtError && /a usb input is not a PCI device/.test(e.message),
    );
  });

  it('hot-plug: a device QEMU placed itself (no address in the live XML) takes no port in the plan', () => {
    const live = completeMachine(parseDomainXml(xml('q35', vda + "<input type='tablet' bus='virtio'/>")), { freeRootPorts: 1 });
    const older = { ...live, inputs: (live.inputs ?? []).map(({ type, bus }) => ({ type, bus })) };
    const free = live.controllers?.filter((c) => c.model === 'pcie-root-port').map((c) => c.index) ?? [];
    assert.ok(free.includes(hotplugAddress(older, 'disk:vdb', undefined).bus));
  });

  it('hot-plug: the next free root port of the live definition', () => {
    const live = completeMachine(parseDomainXml(xml('q35', vda)));
    const a = hotplugAddress(live, 'disk:vdb', undefined);
    const taken = [
      live.disks[0]?.address?.bus,
      live.memballoon?.address?.bus,
      live.controllers?.find((c) => c.type === 'usb')?.address?.bus,
    ];
    assert.ok(!taken.includes(a.bus), `bus ${a.bus} is free`);
    assert.equal(a.slot, 0);
  });
});

describe('machine device XML', () => {
  it('refuses rng sources other than /dev/urandom and /dev/random, and models svirt does not run', () => {
    const bad = (devices: string, re: RegExp): void =>
      assert.throws(
        () => parseDomainXml(xml('q35', devices)),
        (e: unknown) => e instanceof SvirtError && e.code === 'SVIRT_ERR_XML_UNSUPPORTED' && re.test(e.message),
      );
    bad("<rng model='virtio'><backend model='random'>/etc/shadow</backend></rng>", /only \/dev\/urandom and \/dev\/random/);
    bad("<rng model='virtio'><backend model='egd' type='tcp'/></rng>", /rng backend "egd"/);
    bad("<memballoon model='xen'/>", /memballoon model "xen"/);
    bad("<controller type='scsi' model='lsilogic'/>", /scsi controller model "lsilogic"/);
    bad("<controller type='pci' model='pci-bridge'/>", /pci controller model "pci-bridge"/);
    bad("<controller type='ccid'/>", /controller type "ccid"/);
    const rng = parseDomainXml(xml('q35', "<rng model='virtio'><backend model='random'/></rng>")).rngs;
    assert.deepEqual(rng, [{ model: 'virtio', backend: { model: 'random', path: '/dev/urandom' } }], "libvirt's default source");
  });

  it('gives indexless controllers the lowest free index of their type, root ports from 1', () => {
    const def = parseDomainXml(
      xml(
        'q35',
        "<controller type='pci' model='pcie-root-port'/><controller type='pci' index='0' model='pcie-root'/><controller type='pci' model='pcie-root-port'/>",
      ),
    );
    assert.deepEqual(
      def.controllers?.map((c) => c.index),
      [1, 0, 2],
    );
  });
});
