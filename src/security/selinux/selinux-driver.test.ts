import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SvirtError } from '../../errors.js';
import type { GuestResource } from '../driver.js';
import { createSelinuxDriver, selinuxOptionsFromEnv } from './factory.js';
import { SelinuxDriver } from './selinux-driver.js';
import {
  disk,
  domain,
  MemoryLabelMemory,
  MemoryReservations,
  securityContext,
  uuidOf,
  withSeclabel,
} from '../../../test/support/selinux.js';
import { SecurityManager } from '../manager.js';

const FIXTURES = fileURLToPath(new URL('../../../../test/fixtures/selinux/', import.meta.url));
const noPolicy = !existsSync('/etc/selinux/config') && 'no SELinux policy installed (selinux-policy-default)';
const kernelSelinux = existsSync('/sys/fs/selinux/enforce');

function ctxPair(virtType: 'kvm' | 'qemu' = 'kvm') {
  const memory = new MemoryLabelMemory();
  const reservations = new MemoryReservations();
  return { memory, reservations, ctx: securityContext(memory, reservations, '/run/svirt-test', virtType) };
}

const isCode = (code: string, message?: RegExp) => (e: unknown) =>
  e instanceof SvirtError && e.code === code && (message === undefined || message.test(e.message));

describe('SelinuxDriver', { skip: noPolicy }, () => {
  it(
    'probes disabled on a kernel without SELinux, with libvirt’s words',
    { skip: kernelSelinux && 'this kernel runs SELinux' },
    () => {
      assert.deepEqual(new SelinuxDriver().probe(), {
        status: 'disable',
        reason: 'Security driver selinux not enabled: the kernel does not run SELinux',
      });
      assert.equal(new SelinuxDriver().enforcing(), false);
    },
  );

  it('probes enabled in userspace test mode when the policy files are readable', () => {
    const p = new SelinuxDriver({ userspaceTest: true }).probe();
    assert.equal(p.status, 'enable');
    assert.ok(p.status === 'enable' && p.notes?.some((n) => n.startsWith('userspace test mode')));
    const broken = new SelinuxDriver({ userspaceTest: true, root: `${FIXTURES}no-content` }).probe();
    assert.equal(broken.status, 'disable');
    assert.match(
      broken.status === 'disable' ? broken.reason : '',
      /^Security driver selinux not enabled: cannot read ".*virtual_image_context": no content context line$/,
    );
  });

  it('reports the range, its capacity and the base labels', () => {
    const d = new SelinuxDriver({ userspaceTest: true });
    assert.equal(new SecurityManager([d]).doi(d), '0');
    assert.equal(d.capacity(), 523_776);
    assert.deepEqual(d.features(), [
      'MCS category range s0:c0.c1023: 523776 labels',
      'no TCG domain in the policy: TCG guests need virt_use_execmem',
      'userspace test mode: no process label is applied',
    ]);
    assert.equal(d.categoryRangeText(), 's0:c0.c1023');
    assert.deepEqual(d.baseLabels(), [
      { virtType: 'kvm', label: 'system_u:system_r:svirt_t:s0' },
      { virtType: 'qemu', label: 'system_u:system_r:svirt_t:s0' },
    ]);
    assert.equal(new SelinuxDriver({ userspaceTest: true, categoryRange: 'c10.c99' }).capacity(), 4005);
    assert.throws(
      () => new SelinuxDriver({ categoryRange: 'c10' }),
      isCode('SVIRT_ERR_USAGE', /invalid MCS category range "c10"/),
    );
  });

  it('gives TCG guests the second domain context when the policy has one', () => {
    const d = new SelinuxDriver({ userspaceTest: true, root: `${FIXTURES}targeted-tcg` });
    const kvm = d.genLabel(domain('k', 1), ctxPair('kvm').ctx);
    const tcg = d.genLabel(domain('q', 2), ctxPair('qemu').ctx);
    assert.match(kvm.label ?? '', /^system_u:system_r:svirt_t:s0:c\d+,c\d+$/);
    assert.match(tcg.label ?? '', /^system_u:system_r:svirt_tcg_t:s0:c\d+,c\d+$/);
  });

  it('generates a sorted distinct pair, with the image label at the same level', () => {
    const d = new SelinuxDriver({ userspaceTest: true, random: () => 0.999999 });
    const { ctx, reservations } = ctxPair();
    const l = d.genLabel(domain('g', 3), ctx);
    assert.deepEqual(l, {
      type: 'dynamic',
      model: 'selinux',
      relabel: true,
      label: 'system_u:system_r:svirt_t:s0:c1022,c1023',
      imagelabel: 'system_u:object_r:svirt_image_t:s0:c1022,c1023',
    });
    assert.equal(reservations.holder('selinux', 's0:c1022,c1023'), uuidOf(3));
    // A dynamic <label> left over from an earlier run is regenerated, not trusted.
    const again = d.genLabel(
      withSeclabel(domain('g2', 4), { type: 'dynamic', label: 'system_u:system_r:svirt_t:s0:c1,c2' }),
      ctx,
    );
    assert.notEqual(again.label, 'system_u:system_r:svirt_t:s0:c1,c2');
  });

  it('type none: no label, no reservation, no exec context', () => {
    const d = new SelinuxDriver({ userspaceTest: false });
    const { ctx, reservations } = ctxPair();
    const l = d.genLabel(withSeclabel(domain('n', 5), { type: 'none' }), ctx);
    assert.deepEqual(l, { type: 'none', model: 'selinux', relabel: false });
    assert.equal(reservations.count('selinux'), 0);
    assert.deepEqual(d.confinement(domain('n', 5), l), {});
  });

  it('reserves static labels: a dynamic pair never equals one in use, a second user is a conflict', () => {
    const d = new SelinuxDriver({ userspaceTest: true, categoryRange: 'c0.c1' });
    const { ctx } = ctxPair();
    const s = withSeclabel(domain('s', 6), { type: 'static', label: 'system_u:system_r:svirt_t:s0:c1,c0' });
    assert.equal(d.genLabel(s, ctx).label, 'system_u:system_r:svirt_t:s0:c0,c1');
    assert.throws(() => d.genLabel(domain('dyn', 7), ctx), isCode('SVIRT_ERR_LABEL_EXHAUSTED'));
    const s2 = withSeclabel(domain('s2', 8), { type: 'static', label: 'system_u:system_r:svirt_t:s0:c0,c1' });
    assert.throws(
      () => d.genLabel(s2, ctx),
      isCode(
        'SVIRT_ERR_LABEL_CONFLICT',
        new RegExp(`^SELinux level s0:c0,c1 of guest "s2" is already used by guest ${uuidOf(6)}$`),
      ),
    );
    assert.throws(
      () => d.genLabel(withSeclabel(domain('bad', 9), { type: 'static' }), ctx),
      isCode('SVIRT_ERR_XML_INVALID', /has no <label>/),
    );
    assert.throws(
      () => d.genLabel(withSeclabel(domain('bad', 9), { type: 'static', label: 'svirt_t' }), ctx),
      isCode('SVIRT_ERR_XML_INVALID', /invalid SELinux context "svirt_t"/),
    );
  });

  it('reconcile re-reserves a running guest’s label and reports a collision', () => {
    const d = new SelinuxDriver({ userspaceTest: true });
    const { ctx } = ctxPair();
    const a = domain('a', 10);
    const la = d.genLabel(a, ctx);
    d.reserveLabel(a, la, ctx); // the holder itself: fine
    assert.throws(() => d.reserveLabel(domain('b', 11), la, ctx), isCode('SVIRT_ERR_LABEL_CONFLICT', /already used by guest/));
    d.reserveLabel(domain('c', 12), { type: 'none' }, ctx);
  });

  it('exec context only outside userspace test mode', () => {
    const label = { type: 'dynamic', label: 'system_u:system_r:svirt_t:s0:c1,c2' } as const;
    assert.deepEqual(new SelinuxDriver().confinement(domain('x', 13), label), { selinuxExecLabel: label.label });
    assert.deepEqual(new SelinuxDriver({ userspaceTest: true }).confinement(domain('x', 13), label), {});
    assert.throws(() => new SelinuxDriver().confinement(domain('x', 13), { type: 'dynamic' }), isCode('SVIRT_ERR_CONFINE'));
    // Without SELinux in the kernel there is no process context to read: the started label is shown.
    if (!kernelSelinux) assert.equal(new SelinuxDriver().processLabel(domain('x', 13), label, process.pid), label.label);
  });

  it('10,000 live guests get pairwise distinct labels in c0.c1023', (t) => {
    const d = new SelinuxDriver({ userspaceTest: true });
    const { ctx, reservations } = ctxPair();
    const labels = new Set<string>();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 10_000; i++) labels.add(d.genLabel(domain(`g${i}`, i), ctx).label ?? '');
    const perAlloc = Number(process.hrtime.bigint() - t0) / 1e3 / 10_000;
    assert.equal(labels.size, 10_000);
    assert.equal(reservations.count('selinux'), 10_000);
    // The 10,001st with 10,000 live reservations.
    const t1 = process.hrtime.bigint();
    for (let i = 0; i < 1000; i++) {
      d.genLabel(domain('extra', 20_000 + i), ctx);
      reservations.releaseGuest(uuidOf(20_000 + i));
    }
    const atLoad = Number(process.hrtime.bigint() - t1) / 1e3 / 1000;
    t.diagnostic(
      `mean ${perAlloc.toFixed(1)} µs per allocation filling to 10,000; ${atLoad.toFixed(1)} µs at 10,000 live (in-memory reservations)`,
    );
  });

  it('c10.c99 holds 4,005 guests; the 4,006th fails cleanly', () => {
    const d = new SelinuxDriver({ userspaceTest: true, categoryRange: 'c10.c99' });
    const { ctx, reservations } = ctxPair();
    const labels = new Set<string>();
    for (let i = 0; i < 4005; i++) labels.add(d.genLabel(domain(`g${i}`, i), ctx).label ?? '');
    assert.equal(labels.size, 4005);
    assert.throws(
      () => d.genLabel(domain('g4005', 4005), ctx),
      isCode(
        'SVIRT_ERR_LABEL_EXHAUSTED',
        /^cannot allocate an SELinux label for guest "g4005": all 4005 category pairs of s0:c10\.c99 are in use$/,
      ),
    );
    assert.equal(reservations.count('selinux'), 4005);
    assert.equal(reservations.holder('selinux', 's0:c10,c11') !== undefined, true);
  });

  it('describes what it would do without touching anything', () => {
    const d = new SelinuxDriver({ userspaceTest: true });
    const def = domain('web', 14, { disks: [disk('/var/lib/svirt/images/web.qcow2')] });
    const res: GuestResource[] = [
      { path: '/run/svirt/web', role: 'runtime-dir', seclabels: [] },
      { path: '/var/lib/svirt/images/web.qcow2', role: 'disk', seclabels: [] },
      { path: '/var/lib/svirt/images/base.qcow2', role: 'backing', seclabels: [] },
      { path: '/srv/iso/debian.iso', role: 'disk-readonly', seclabels: [] },
      { path: '/srv/shared.img', role: 'disk-shareable', seclabels: [] },
      { path: '/srv/keep.img', role: 'disk', seclabels: [{ relabel: false }] },
    ];
    const text = d.describe(def, { type: 'dynamic' }, res, ctxPair().ctx);
    assert.equal(
      text,
      [
        'selinux: guest "web", policy default (/etc/selinux/default)',
        'process: system_u:system_r:svirt_t:s0:cA,cB (dynamic, not applied: userspace test mode)',
        '  cA,cB: a unique pair from s0:c0.c1023 (523776 pairs), reserved at start',
        'image label: system_u:object_r:svirt_image_t:s0:cA,cB',
        '/run/svirt/web (runtime-dir): system_u:object_r:svirt_image_t:s0:cA,cB (private to the guest: image label)',
        '/var/lib/svirt/images/web.qcow2 (disk): system_u:object_r:svirt_image_t:s0:cA,cB (private to the guest: image label)',
        '/var/lib/svirt/images/base.qcow2 (backing): system_u:object_r:virt_content_t:s0 (read-only: content label)',
        '/srv/iso/debian.iso (disk-readonly): system_u:object_r:virt_content_t:s0 (read-only: content label)',
        '/srv/shared.img (disk-shareable): system_u:object_r:svirt_image_t:s0 (shareable: image type without categories)',
        "/srv/keep.img (disk): unchanged (device seclabel relabel='no')",
        '',
      ].join('\n'),
    );
    const live = d.describe(
      def,
      { type: 'static', relabel: false, label: 'system_u:system_r:svirt_t:s0:c3,c4' },
      res.slice(0, 2),
      ctxPair().ctx,
    );
    assert.match(live, /^process: system_u:system_r:svirt_t:s0:c3,c4 \(static, not applied: userspace test mode\)$/m);
    assert.match(live, /^\/run\/svirt\/web \(runtime-dir\): unchanged \(seclabel relabel='no'\)$/m);
  });

  it('is built from SVIRT_SELINUX_* settings', () => {
    assert.deepEqual(selinuxOptionsFromEnv({}), { userspaceTest: false });
    assert.deepEqual(
      selinuxOptionsFromEnv({
        SVIRT_SELINUX_MODE: 'userspace-test',
        SVIRT_SELINUX_ROOT: FIXTURES,
        SVIRT_SELINUX_CATEGORY_RANGE: 'c10.c99',
      }),
      { userspaceTest: true, root: FIXTURES, categoryRange: 'c10.c99' },
    );
    assert.throws(() => selinuxOptionsFromEnv({ SVIRT_SELINUX_MODE: 'permissive' }), isCode('SVIRT_ERR_USAGE'));
    const d = createSelinuxDriver({ SVIRT_SELINUX_MODE: 'userspace-test', SVIRT_SELINUX_CATEGORY_RANGE: 'c10.c99' });
    assert.equal(d.name, 'selinux');
    assert.equal(d.probe().status, 'enable');
  });
});
