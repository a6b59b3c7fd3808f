/**
 * The manager's own logic: the defaults of optional driver members, the pairing rule, and
 * the order of the label-then-undo loop. The recording drivers here touch no file (what
 * real drivers do to real files is test/conformance/drivers.test.ts); they only say which
 * hook ran when.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { SecLabelDef } from '../domain/domain-def.js';
import { SvirtError } from '../errors.js';
import { MemoryLabelMemory, MemoryReservations, domain, securityContext } from '../../test/support/selinux.js';
import type { DriverName, GuestResource, SecurityDriver } from './driver.js';
import { SecurityManager } from './manager.js';
import { NoneDriver } from './none/none-driver.js';

const ctx = securityContext(new MemoryLabelMemory(), new MemoryReservations());
const res = (path: string): GuestResource => ({ path, role: 'disk', seclabels: [] });

/** A driver that logs every hook; `fail` names the hook call (e.g. "dac set /b") that throws. */
function recorder(name: DriverName, log: string[], fail: readonly string[] = []): SecurityDriver {
  const step = (what: string): void => {
    log.push(what);
    if (fail.includes(what)) throw new SvirtError('SVIRT_ERR_LABEL_APPLY', `${what} failed`);
  };
  return {
    name,
    probe: () => ({ status: 'enable' }),
    genLabel: (): SecLabelDef => ({ type: 'dynamic', model: name, label: `${name}-label` }),
    setGuestLabel: () => step(`${name} guest`),
    restoreGuestLabel: () => step(`${name} unguest`),
    setResourceLabel: (_d, _l, r) => step(`${name} set ${r.path}`),
    restoreResourceLabel: (_d, _l, r) => step(`${name} restore ${r.path}`),
  };
}

describe('SecurityManager', () => {
  it('supplies the defaults of optional members', async () => {
    const none = new NoneDriver();
    const m = new SecurityManager([none]);
    assert.equal(m.doi(none), '0');
    assert.deepEqual(m.baseLabels(none), []);
    assert.equal(m.processLabel(none, domain('a', 1), { type: 'dynamic', label: 'x:y' }, 1), 'x:y');
    const live = m.genLabels(domain('a', 1), ctx);
    assert.deepEqual(live.seclabels, [{ type: 'none', model: 'none' }]);
    m.reserveLabels(live, ctx);
    await m.setAllLabel(live, [res('/nonexistent/a')], ctx);
    assert.deepEqual(m.confinement(live, [], ctx, []), {
      version: 1,
      rlimits: [{ resource: 'core', soft: 0, hard: 0 }],
      noNewPrivs: true,
      keepFds: [],
    });
    assert.deepEqual(m.dryRun(live, [], ctx), [{ driver: 'none', text: '(type none: not confined by this driver)' }]);
  });

  it('refuses a driver with half a pair of hooks, and a confining driver without a dry run', () => {
    const { restoreResourceLabel: _, ...half } = recorder('dac', []);
    assert.throws(
      () => new SecurityManager([half]),
      (e: unknown) => e instanceof SvirtError && e.message === "driver 'dac' has setResourceLabel but no restoreResourceLabel",
    );
    const m = new SecurityManager([recorder('dac', [])]);
    assert.throws(() => m.dryRun(m.genLabels(domain('a', 1), ctx), [], ctx), /driver 'dac' has no dry run/);
  });

  it('labels driver by driver (guest hook, then each resource); restore withdraws the guest hook first, last driver first', async () => {
    const log: string[] = [];
    const m = new SecurityManager([recorder('selinux', log), recorder('dac', log)]);
    const live = m.genLabels(domain('a', 1), ctx);
    await m.setAllLabel(live, [res('/a'), res('/b')], ctx);
    await m.restoreAllLabel(live, [res('/a'), res('/b')], ctx);
    assert.deepEqual(log, [
      'selinux guest',
      'selinux set /a',
      'selinux set /b',
      'dac guest',
      'dac set /a',
      'dac set /b',
      'dac unguest',
      'dac restore /b',
      'dac restore /a',
      'selinux unguest',
      'selinux restore /b',
      'selinux restore /a',
    ]);
  });

  it('on a failure undoes every step done, the failing one included, in reverse across drivers', async () => {
    const log: string[] = [];
    const m = new SecurityManager([recorder('selinux', log), recorder('dac', log, ['dac set /b'])]);
    const live = m.genLabels(domain('a', 1), ctx);
    await assert.rejects(() => m.setAllLabel(live, [res('/a'), res('/b'), res('/c')], ctx), /^SvirtError: dac set \/b failed$/);
    assert.deepEqual(log.slice(log.indexOf('dac set /b') + 1), [
      'dac unguest',
      'dac restore /b',
      'dac restore /a',
      'selinux unguest',
      'selinux restore /c',
      'selinux restore /b',
      'selinux restore /a',
    ]);
  });

  it('names an undo that failed too, keeping the code of the first error', async () => {
    const m = new SecurityManager([recorder('selinux', [], ['selinux set /b', 'selinux restore /a'])]);
    const live = m.genLabels(domain('a', 1), ctx);
    await assert.rejects(
      () => m.setAllLabel(live, [res('/a'), res('/b')], ctx),
      (e: unknown) =>
        e instanceof SvirtError &&
        e.code === 'SVIRT_ERR_LABEL_APPLY' &&
        e.message === 'selinux set /b failed (and undoing failed: selinux restore /a failed)' &&
        JSON.stringify(e.details['undoErrors']) === '["selinux restore /a failed"]',
    );
  });

  it('hotplug undoes the drivers before the one that failed; hot-unplug tries every driver and joins the errors', async () => {
    const log: string[] = [];
    const m = new SecurityManager([recorder('selinux', log), recorder('dac', log, ['dac set /h', 'dac restore /x'])]);
    const live = m.genLabels(domain('a', 1), ctx);
    await assert.rejects(() => m.setResourceLabel(live, res('/h'), ctx), /dac set \/h failed/);
    assert.deepEqual(log, ['selinux set /h', 'dac set /h', 'dac restore /h', 'selinux restore /h']);
    const failing = new SecurityManager([
      recorder('selinux', [], ['selinux restore /x']),
      recorder('dac', [], ['dac restore /x']),
    ]);
    await assert.rejects(
      () => failing.restoreResourceLabel(failing.genLabels(domain('b', 2), ctx), res('/x'), ctx),
      (e: unknown) =>
        e instanceof SvirtError &&
        e.code === 'SVIRT_ERR_LABEL_RESTORE' &&
        e.message === 'cannot restore the label of "/x": dac restore /x failed; selinux restore /x failed',
    );
  });

  it('refuses a helper (fail closed) when a driver confines QEMU but has no helper member', async () => {
    const confining: SecurityDriver = { ...recorder('dac', []), confinement: () => ({ uid: 5, gid: 5 }) };
    const m = new SecurityManager([confining]);
    const live = m.genLabels(domain('g', 1), ctx);
    const helper = { kind: 'swtpm', id: 'tpm0', binary: '/usr/bin/swtpm', paths: [] } as const;
    await assert.rejects(
      () => m.helperConfinement(live, helper, ctx, []),
      (e: unknown) =>
        e instanceof SvirtError &&
        e.code === 'SVIRT_ERR_CONFINE' &&
        e.message === "driver 'dac' cannot confine the swtpm helper of device tpm0: the device is refused",
    );
    assert.match((await m.dryRunHelper(live, helper, ctx))[0]?.text ?? '', /^refused: driver 'dac' cannot confine/);
    // a driver that confines no process at all (none) adds nothing and refuses nothing
    const none = new SecurityManager([new NoneDriver()]);
    assert.deepEqual((await none.helperConfinement(none.genLabels(domain('n', 2), ctx), helper, ctx, [4])).keepFds, [4]);
  });
});
