import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SvirtError } from '../errors.js';
import type { ControllerDef, PciAddress } from './machine-def.js';
import { assignPci, DEFAULT_FREE_ROOT_PORTS, isRootPort, pciAddrOption, pciMachine } from './pci-address.js';

const root35: ControllerDef = { type: 'pci', index: 0, model: 'pcie-root' };
const rootPc: ControllerDef = { type: 'pci', index: 0, model: 'pci-root' };
const at = (bus: number, slot: number, fn = 0): PciAddress => ({ domain: 0, bus, slot, function: fn });

function throwsCode(fn: () => unknown, code: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof SvirtError && e.code === code && re.test(e.message));
}

describe('assignPci (q35)', () => {
  it('puts each device alone in a root port, root ports on pcie.0 functions from 2.0, plus free ones for hot-plug', () => {
    const plan = assignPci('q35', [root35], [{ id: 'disk:vda' }, { id: 'memballoon' }]);
    assert.deepEqual(plan.addresses.get('disk:vda'), at(1, 0));
    assert.deepEqual(plan.addresses.get('memballoon'), at(2, 0));
    const ports = plan.controllers.filter(isRootPort);
    assert.equal(ports.length, 2 + DEFAULT_FREE_ROOT_PORTS);
    assert.deepEqual(
      ports.map((p) => [p.index, p.address?.slot, p.address?.function, p.chassis, p.port]),
      [
        [1, 2, 0, 1, 0x10],
        [2, 2, 1, 2, 0x11],
        [3, 2, 2, 3, 0x12],
        [4, 2, 3, 4, 0x13],
        [5, 2, 4, 5, 0x14],
        [6, 2, 5, 6, 0x15],
      ],
    );
    assert.equal(ports[0]?.address?.multifunction, true, 'function 0 of a shared slot is multifunction');
    assert.equal(ports[1]?.address?.multifunction, undefined);
  });

  it('fills slot 3 after the eight functions of slot 2, never slot 1 (video) or 0x1f (ICH9)', () => {
    const plan = assignPci(
      'q35',
      [root35],
      [...Array(9).keys()].map((i) => ({ id: `d${i}` })),
      { freeRootPorts: 0 },
    );
    const ports = plan.controllers.filter(isRootPort);
    assert.deepEqual(ports[8]?.address, { domain: 0, bus: 0, slot: 3, function: 0 });
    assert.ok(ports.every((p) => p.address?.slot !== 1 && p.address?.slot !== 0x1f));
  });

  it('honours given addresses and ports, and counts a given empty port as free', () => {
    const given: ControllerDef[] = [
      root35,
      { type: 'pci', index: 1, model: 'pcie-root-port' },
      { type: 'pci', index: 2, model: 'pcie-root-port' },
    ];
    const plan = assignPci('q35', given, [{ id: 'nic', address: at(2, 0) }, { id: 'disk:vda' }], { freeRootPorts: 1 });
    assert.deepEqual(plan.addresses.get('nic'), at(2, 0));
    assert.deepEqual(plan.addresses.get('disk:vda'), at(1, 0), 'the lowest free port');
    assert.equal(plan.controllers.filter(isRootPort).length, 3, 'one more, to keep one free');
  });

  it('adds the root port a given address names, as libvirt does', () => {
    const plan = assignPci('q35', [root35], [{ id: 'disk:vda', address: at(4, 0) }], { freeRootPorts: 0 });
    assert.deepEqual(
      plan.controllers.filter(isRootPort).map((c) => c.index),
      [4],
    );
  });

  it('refuses what cannot be: two devices at one address, slot 1 of a root port, the ICH9 slot, a hot-plug onto pcie.0', () => {
    throwsCode(
      () =>
        assignPci(
          'q35',
          [root35],
          [
            { id: 'a', address: at(0, 4) },
            { id: 'b', address: at(0, 4) },
          ],
        ),
      'SVIRT_ERR_XML_INVALID',
      /b and a both use 0000:00:04.0/,
    );
    throwsCode(
      () => assignPci('q35', [root35, { type: 'pci', index: 1, model: 'pcie-root-port' }], [{ id: 'a', address: at(1, 1) }]),
      'SVIRT_ERR_XML_INVALID',
      /only slot 0/,
    );
    throwsCode(() => assignPci('q35', [root35], [{ id: 'a', address: at(0, 0x1f, 4) }]), 'SVIRT_ERR_XML_INVALID', /built-in/);
    throwsCode(
      () => assignPci('q35', [root35], [{ id: 'a', address: at(0, 5), hotplug: true }]),
      'SVIRT_ERR_XML_INVALID',
      /does not support hot-plug/,
    );
  });

  it('hot-plug (frozen) takes a free port and never adds one', () => {
    const start = assignPci('q35', [root35], [{ id: 'disk:vda' }], { freeRootPorts: 1 });
    const used = [...start.addresses].map(([id, address]) => ({ id, address }));
    const hot = assignPci('q35', start.controllers, [...used, { id: 'disk:vdb', hotplug: true }], { frozen: true });
    assert.deepEqual(hot.addresses.get('disk:vdb'), at(2, 0));
    assert.equal(hot.controllers.length, start.controllers.length);
    const full = [...used, { id: 'disk:vdb', address: at(2, 0) }];
    throwsCode(
      () => assignPci('q35', start.controllers, [...full, { id: 'disk:vdc' }], { frozen: true }),
      'SVIRT_ERR_OPERATION_INVALID',
      /no free pcie-root-port for disk:vdc/,
    );
  });
});

describe('assignPci (i440fx)', () => {
  it('uses pci.0 slots from 3 (0 host bridge, 1 PIIX3, 2 video) and adds no controller', () => {
    const plan = assignPci('i440fx', [rootPc], [{ id: 'a' }, { id: 'b', address: at(0, 4) }, { id: 'c' }]);
    assert.deepEqual([...plan.addresses.values()], [at(0, 3), at(0, 4), at(0, 5)]);
    assert.deepEqual(plan.controllers, [rootPc]);
  });

  it('runs out after slot 31 and refuses buses it has not got', () => {
    const many = [...Array(29).keys()].map((i) => ({ id: `d${i}` }));
    assert.equal(assignPci('i440fx', [rootPc], many).addresses.size, 29);
    throwsCode(
      () => assignPci('i440fx', [rootPc], [...many, { id: 'one-more' }]),
      'SVIRT_ERR_XML_INVALID',
      /no free slot on pci.0/,
    );
    throwsCode(
      () => assignPci('i440fx', [rootPc], [{ id: 'a', address: at(1, 0) }]),
      'SVIRT_ERR_XML_INVALID',
      /bus 0x1 has no PCI controller/,
    );
  });
});

describe('pci helpers', () => {
  it('knows the machine families and writes addr= as QEMU takes it', () => {
    assert.equal(pciMachine(undefined), 'i440fx');
    assert.equal(pciMachine('pc-i440fx-7.2'), 'i440fx');
    assert.equal(pciMachine('pc'), 'i440fx');
    assert.equal(pciMachine('q35'), 'q35');
    assert.equal(pciMachine('pc-q35-8.2'), 'q35');
    assert.equal(pciMachine('microvm'), undefined);
    assert.equal(pciAddrOption(at(0, 3)), '0x3');
    assert.equal(pciAddrOption(at(0, 2, 7)), '0x2.0x7');
  });
});
