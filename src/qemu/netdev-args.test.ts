import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseDomainXml } from '../domain/index.js';
import { buildArgv } from './argv.js';
import { netdevProps, nicDeviceProps } from './netdev-args.js';

const XML = `<domain type='qemu'><name>n</name><memory>65536</memory><os><type>hvm</type></os><devices>
<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev='vnet3'/><model type='virtio'/><alias name='net0'/></interface>
<interface type='network'><mac address='52:54:00:00:00:02'/><source network='default'/><model type='e1000'/><alias name='net1'/></interface>
<interface type='user'><mac address='52:54:00:00:00:03'/><backend type='passt'/><alias name='ua-p'/></interface>
<interface type='user'><mac address='52:54:00:00:00:04'/><backend type='default'/><alias name='net3'/></interface>
</devices></domain>`;

describe('NIC argv', () => {
  it('gives QEMU a tap fd (with vhost), a socket to passt, or slirp, and a device with the MAC', () => {
    const def = parseDomainXml(XML);
    const argv = buildArgv(def, {
      emulator: '/usr/bin/qemu-system-x86_64',
      accel: 'tcg',
      qmpFd: 4,
      paused: false,
      fdsets: new Map(),
      nics: new Map([
        [0, { kind: 'tap', fd: 5, vhostFd: 6 }],
        [1, { kind: 'tap', fd: 7 }],
        [2, { kind: 'stream', fd: 8 }],
        [3, { kind: 'user' }],
      ]),
    }).join(' ');
    assert.match(
      argv,
      / -netdev tap,id=hostnet0,fd=5,vhost=on,vhostfd=6 -device virtio-net-pci,netdev=hostnet0,id=net0,mac=52:54:00:00:00:01/,
    );
    assert.match(argv, / -netdev tap,id=hostnet1,fd=7 -device e1000,netdev=hostnet1,id=net1,mac=52:54:00:00:00:02/);
    assert.match(
      argv,
      / -netdev stream,id=hostua-p,server=off,addr.type=fd,addr.str=8 -device rtl8139,netdev=hostua-p,id=ua-p,mac=52:54:00:00:00:03/,
    );
    assert.match(argv, / -netdev user,id=hostnet3 -device rtl8139,netdev=hostnet3,id=net3,mac=52:54:00:00:00:04/);
    assert.doesNotMatch(argv, /ifname=|script=|br0|helper/, 'QEMU never names a host interface or runs a script');
  });

  it('never drops a NIC: one without a backend is an internal error, not a guest without network', () => {
    assert.throws(
      () => buildArgv(parseDomainXml(XML), { emulator: 'q', accel: 'tcg', qmpFd: 4, paused: false, fdsets: new Map() }),
      /no backend was made for interface 0/,
    );
  });

  it('hot-plug uses the same ids and properties (QMP netdev_add over getfd names)', () => {
    const def = parseDomainXml(XML);
    const nic = def.interfaces[0];
    assert.ok(nic);
    assert.deepEqual(netdevProps(nic, { kind: 'tap', fd: 'tap-net0', vhostFd: 'vhost-net0' }), {
      type: 'tap',
      id: 'hostnet0',
      fd: 'tap-net0',
      vhost: true,
      vhostfd: 'vhost-net0',
    });
    // A hot-plugged passt: the legacy socket netdev takes a getfd name (a stream netdev cannot).
    assert.deepEqual(netdevProps(nic, { kind: 'socket', fd: 'passtfd-net0' }), {
      type: 'socket',
      id: 'hostnet0',
      fd: 'passtfd-net0',
    });
    assert.deepEqual(nicDeviceProps(def, nic), {
      driver: 'virtio-net-pci',
      netdev: 'hostnet0',
      id: 'net0',
      mac: '52:54:00:00:00:01',
    });
  });
});
