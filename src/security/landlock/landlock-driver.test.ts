import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DomainDef } from '../../domain/domain-def.js';
import type { SecurityContext } from '../driver.js';
import { LandlockDriver } from './landlock-driver.js';

// Pure logic: the ruleset text for a given ABI. What the kernel enforces is tested with real
// QEMU in test/attacks and with svirt-exec in test/native.
const ctx = {
  runtimeDir: '/run/svirt/u1',
  runtimeRoot: '/run/svirt',
  virtType: 'qemu',
  emulator: '/usr/bin/qemu-system-x86_64',
} as unknown as SecurityContext;

function def(extra: Partial<DomainDef> = {}): DomainDef {
  return {
    type: 'qemu',
    name: 'g',
    uuid: 'u1',
    memoryKiB: 1024,
    currentMemoryKiB: 1024,
    vcpus: 1,
    os: { type: 'hvm' },
    features: [],
    disks: [],
    chardevs: [],
    seclabels: [],
    interfaces: [],
    ignoredDevices: [],
    source: { kind: 'element', name: 'domain', attrs: [], children: [] },
    ...extra,
  };
}

describe('LandlockDriver', () => {
  it('is disabled, with the reason, when the kernel has no Landlock', () => {
    const p = new LandlockDriver({ abi: 0, error: 'ENOSYS', userns: false }).probe();
    assert.deepEqual(p, { status: 'disable', reason: 'the kernel does not offer Landlock (ENOSYS)' });
  });

  it('drops what an old kernel lacks in best effort, and says so', () => {
    const d = new LandlockDriver({ abi: 2, userns: true });
    const spec = d.ruleset(def(), [], ctx);
    assert.ok(spec.handledFs.includes('refer'));
    assert.ok(!spec.handledFs.includes('truncate'));
    assert.deepEqual(spec.handledNet, []);
    assert.deepEqual(spec.scoped, []);
    assert.equal(spec.logNewExec, false);
    assert.equal(spec.minAbi, undefined);
    const notes = d.features().join('; ');
    assert.match(
      notes,
      /not enforced by this kernel: truncate, TCP bind\/connect, device ioctl, signal and abstract UNIX socket scoping, denial logging/,
    );
  });

  it('writes the full ruleset with a required ABI when best effort is off', () => {
    const spec = new LandlockDriver({ abi: 2, userns: true }, { bestEffort: false }).ruleset(def(), [], ctx);
    assert.equal(spec.minAbi, 7);
    assert.deepEqual(spec.scoped, ['abstract_unix_socket', 'signal']);
    assert.deepEqual(spec.handledNet, ['bind_tcp', 'connect_tcp']);
  });

  it('allows no image path, only code, firmware, its runtime dir and its own non-disk files', () => {
    const spec = new LandlockDriver({ abi: 7, userns: true }).ruleset(
      def({ chardevs: [{ element: 'serial', type: 'file', path: '/var/log/g.log', seclabels: [] }] }),
      [
        { path: '/img/a.img', role: 'disk', seclabels: [] },
        { path: '/img/b.iso', role: 'disk-readonly', seclabels: [] },
        { path: '/boot/vmlinuz', role: 'kernel', seclabels: [] },
        { path: '/var/log/g.log', role: 'chardev', seclabels: [] },
      ],
      ctx,
    );
    const paths = spec.pathRules.map((r) => r.path);
    assert.ok(!paths.some((p) => p.startsWith('/img/')), 'disks come as fds');
    assert.deepEqual(spec.pathRules.find((r) => r.path === '/boot/vmlinuz')?.access, ['read_file']);
    // svirt creates the serial log and hands QEMU the fd: no path right is needed.
    assert.equal(
      spec.pathRules.find((r) => r.path === '/var/log/g.log'),
      undefined,
    );
    assert.ok(spec.pathRules.find((r) => r.path === '/run/svirt/u1')?.access.includes('make_sock'));
    assert.equal(spec.netRules.length, 0, 'no TCP port for a guest without network devices');
    assert.ok(!paths.includes('/dev/kvm'), 'no /dev/kvm for a TCG guest');
  });

  it('hides other guests with a private mount view (a user namespace without root)', () => {
    const part = new LandlockDriver({ abi: 7, userns: true }).confinement(def(), { type: 'dynamic' }, [], ctx);
    assert.deepEqual(part.mountView, { hide: '/run/svirt', keep: '/run/svirt/u1', userns: process.getuid?.() !== 0 });
    const none = new LandlockDriver({ abi: 7, userns: false }, { mountView: false }).confinement(
      def(),
      { type: 'dynamic' },
      [],
      ctx,
    );
    assert.equal(none.mountView, undefined);
  });
});
