import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DomainDef, DiskDef } from '../../domain/domain-def.js';
import { Store } from '../../store/store.js';
import type { GuestResource, SecurityContext } from '../driver.js';
import { DacDriver } from './dac-driver.js';
import { restoreAllLabel, setAllLabel } from '../../../test/support/stack.js';

const root = process.getuid?.() === 0;

function setup(t: { after: (fn: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'svirt-dac-'));
  const store = Store.open(join(dir, 'state'));
  t.after(() => {
    // The ids go back, claims included: this file's tests share one claim dir (scripts/run-tests.mjs),
    // and an id the first test kept would be missing from the next one's range.
    for (const uuid of store.reservedNotRunning()) store.releaseReservations(uuid);
    store.close();
    rmSync(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
  });
  const ctx: SecurityContext = {
    runtimeDir: join(dir, 'run', 'g'),
    runtimeRoot: join(dir, 'run'),
    memory: store,
    reservations: store,
    virtType: 'qemu',
    emulator: '/usr/bin/qemu-system-x86_64',
  };
  return { dir, store, ctx };
}

function def(name: string, uuid: string, seclabels: DomainDef['seclabels'] = []): DomainDef {
  return {
    type: 'qemu',
    name,
    uuid,
    memoryKiB: 65536,
    currentMemoryKiB: 65536,
    vcpus: 1,
    os: { type: 'hvm' },
    features: [],
    disks: [],
    chardevs: [],
    seclabels,
    interfaces: [],
    ignoredDevices: [],
    source: { kind: 'element', name: 'domain', attrs: [], children: [] },
  };
}

function file(path: string, uid: number, gid: number, mode: number): string {
  writeFileSync(path, 'x');
  chownSync(path, uid, gid);
  chmodSync(path, mode);
  return path;
}

const disk = (path: string): DiskDef => ({
  type: 'file',
  device: 'disk',
  format: 'raw',
  path,
  target: { dev: 'vda', bus: 'virtio' },
  readonly: false,
  shareable: false,
  seclabels: [],
});

describe('DacDriver', { skip: root ? false : 'chown needs root' }, () => {
  it('hands private files to a unique uid and restores the remembered owner', async (t) => {
    const { dir, ctx } = setup(t);
    const drv = new DacDriver({ range: { first: 1_900_000_000, count: 1000 }, taken: { uids: new Set(), gids: new Set() } });
    mkdirSync(ctx.runtimeDir, { recursive: true, mode: 0o700 });
    const rw = file(join(dir, 'rw.img'), 1000, 1000, 0o644);
    const ro = file(join(dir, 'ro.iso'), 1000, 1000, 0o644);
    const shared = file(join(dir, 'shared.img'), 1000, 1000, 0o660);
    const res: GuestResource[] = [
      { path: ctx.runtimeDir, role: 'runtime-dir', seclabels: [] },
      { path: rw, role: 'disk', seclabels: [] },
      { path: ro, role: 'disk-readonly', seclabels: [] },
      { path: shared, role: 'disk-shareable', seclabels: [] },
    ];
    const d = def('g', 'u-1');
    const label = drv.genLabel(d, ctx);
    const uid = Number(/^\+(\d+):/.exec(label.label ?? '')?.[1]);
    assert.ok(uid >= 1_900_000_000 && uid < 1_900_001_000);
    await setAllLabel(drv, d, label, res, ctx);
    assert.equal(statSync(rw).uid, uid);
    assert.equal(statSync(rw).mode & 0o777, 0o600);
    assert.equal(statSync(ctx.runtimeDir).uid, uid);
    assert.equal(statSync(ro).uid, 1000, 'read-only media keep their owner');
    assert.equal(statSync(shared).uid, 1000, 'shareable disks keep their owner (QEMU gets an fd)');
    await restoreAllLabel(drv, d, label, res, ctx);
    assert.deepEqual([statSync(rw).uid, statSync(rw).gid, statSync(rw).mode & 0o777], [1000, 1000, 0o644]);
    assert.equal(statSync(shared).mode & 0o777, 0o660, 'a shareable disk keeps its mode');
    assert.deepEqual(ctx.memory.recall('dac', rw), undefined);
  });

  it('records every original before its first label, at one sync; a failed start keeps none', async (t) => {
    const { dir, store, ctx } = setup(t);
    const drv = new DacDriver({ range: { first: 1_900_000_000, count: 1000 }, taken: { uids: new Set(), gids: new Set() } });
    const paths = ['a.img', 'b.img', 'c.img'].map((n) => file(join(dir, n), 1000, 1000, 0o644));
    const events: string[] = [];
    const memory: SecurityContext['memory'] = {
      remember: (driver, path, uuid, original) => {
        // A label follows each remember(): by then its original must be on disk.
        events.push(`label ${path} (owner ${statSync(path).uid})`);
        return store.remember(driver, path, uuid, original);
      },
      rememberUnsynced: (driver, path, uuid, original) => {
        events.push(`note ${path}`);
        return store.rememberUnsynced(driver, path, uuid, original);
      },
      syncRemembered: () => {
        events.push('sync');
        store.syncRemembered();
      },
      recall: (driver, path) => store.recall(driver, path),
      release: (driver, path, uuid) => store.release(driver, path, uuid),
      forget: (driver, path) => store.forget(driver, path),
    };
    const c = { ...ctx, memory };
    const res: GuestResource[] = paths.map((path) => ({ path, role: 'disk', seclabels: [], disk: disk(path) }));
    const d = def('n', 'u-n');
    const label = drv.genLabel(d, c);
    await setAllLabel(drv, d, label, res, c);
    assert.deepEqual(events, [...paths.map((p) => `note ${p}`), 'sync', ...paths.map((p) => `label ${p} (owner 1000)`)]);
    for (const p of paths)
      assert.deepEqual(JSON.parse(store.recall('dac', p)?.original ?? '{}'), { uid: 1000, gid: 1000, mode: 0o644 });
    await restoreAllLabel(drv, d, label, res, c);
    for (const p of paths) assert.equal(statSync(p).uid, 1000);

    // The second file goes between the two passes: the first is labelled and given back, the
    // third was only noted, and its row goes too.
    events.length = 0;
    const gone = paths[1] as string;
    const failing: SecurityContext['memory'] = {
      ...memory,
      syncRemembered: () => {
        memory.syncRemembered?.();
        rmSync(gone);
      },
    };
    await assert.rejects(() => setAllLabel(drv, d, label, res, { ...c, memory: failing }), /cannot label/);
    for (const p of [paths[0], paths[2]] as string[]) {
      assert.equal(statSync(p).uid, 1000, `${p} has its owner back`);
      assert.equal(store.recall('dac', p), undefined, `no remembered row for ${p}`);
    }
    assert.equal(store.recall('dac', gone), undefined);
  });

  it('allocates distinct ids and fails cleanly when the range is exhausted', (t) => {
    const { ctx } = setup(t);
    const drv = new DacDriver({
      range: { first: 1_900_000_000, count: 50 },
      taken: { uids: new Set([1_900_000_007]), gids: new Set() },
    });
    const seen = new Set<string>();
    for (let i = 0; i < 49; i++) seen.add(drv.genLabel(def(`g${i}`, `u${i}`), ctx).label ?? '');
    assert.equal(seen.size, 49);
    assert.ok(!seen.has('+1900000007:+1900000007'), 'an id named in /etc/passwd is never handed out');
    assert.throws(() => drv.genLabel(def('g50', 'u50'), ctx), /no free dac id left/);
  });

  it("honours static labels, relabel='no' and per-disk overrides", async (t) => {
    const { dir, ctx } = setup(t);
    const drv = new DacDriver({ range: { first: 1_900_000_000, count: 10 }, taken: { uids: new Set(), gids: new Set() } });
    const img = file(join(dir, 'a.img'), 0, 0, 0o644);
    const keep = file(join(dir, 'keep.img'), 0, 0, 0o644);
    const d = def('s', 'u-s', [{ type: 'static', model: 'dac', relabel: true, label: '+1234:+5678' }]);
    const label = drv.genLabel(d, ctx);
    assert.equal(label.label, '+1234:+5678');
    const res: GuestResource[] = [
      { path: img, role: 'disk', seclabels: [], disk: disk(img) },
      { path: keep, role: 'disk', seclabels: [{ model: 'dac', relabel: false }] },
    ];
    await setAllLabel(drv, d, label, res, ctx);
    assert.equal(statSync(img).uid, 1234);
    assert.equal(statSync(img).gid, 5678);
    assert.equal(statSync(keep).uid, 0, "per-disk relabel='no' leaves the file alone");
    await restoreAllLabel(drv, d, label, res, ctx);
    assert.equal(statSync(img).uid, 0);
    // A second guest cannot take the same static uid while the first holds it.
    assert.throws(() => drv.genLabel(def('s2', 'u-s2', [{ type: 'static', model: 'dac', label: '+1234:+1234' }]), ctx), /in use/);
    // relabel='no' on the domain: nothing is chowned.
    const d3 = def('s3', 'u-s3', [{ type: 'static', model: 'dac', relabel: false, label: '+4321:+4321' }]);
    const l3 = drv.genLabel(d3, ctx);
    await setAllLabel(drv, d3, l3, [{ path: img, role: 'disk', seclabels: [] }], ctx);
    assert.equal(statSync(img).uid, 0);
  });

  it('refuses to follow a symlink swapped in for an image, and undoes what it did', async (t) => {
    const { dir, ctx } = setup(t);
    const drv = new DacDriver({ range: { first: 1_900_000_000, count: 10 }, taken: { uids: new Set(), gids: new Set() } });
    const ok = file(join(dir, 'ok.img'), 1000, 1000, 0o644);
    const target = file(join(dir, 'secret'), 0, 0, 0o600);
    symlinkSync(target, join(dir, 'link.img'));
    const d = def('l', 'u-l');
    const label = drv.genLabel(d, ctx);
    await assert.rejects(
      () =>
        setAllLabel(
          drv,
          d,
          label,
          [
            { path: ok, role: 'disk', seclabels: [] },
            { path: join(dir, 'link.img'), role: 'disk', seclabels: [] },
          ],
          ctx,
        ),
      /link\.img.*symbolic link/,
    );
    assert.equal(statSync(target).uid, 0, 'the symlink target was not touched');
    assert.equal(statSync(ok).uid, 1000, 'the first image was given back');
    assert.equal(ctx.memory.recall('dac', ok), undefined);
  });
});
