/**
 * Files several guests use, conflicts, failures and recovery, on real files with real
 * xattrs (userspace test mode). Needs root and the native addon.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { SvirtError } from '../../errors.js';
import type { GuestResource } from '../driver.js';
import {
  CONTENT,
  HOME,
  IMAGE,
  labelOf,
  levelOf,
  SHARED,
  skipFiles,
  stashOf,
  world,
} from '../../../test/support/selinux-files.js';
import { domain } from '../../../test/support/selinux.js';
import { setAllLabel } from '../../../test/support/stack.js';

describe('SelinuxDriver sharing, conflicts and recovery', { skip: skipFiles }, () => {
  it('read-only and shareable files shared by two guests are restored when the last one stops', async (t) => {
    const w = world(t);
    const iso = w.file('shared.iso', HOME);
    const shared = w.file('cluster.img', HOME);
    const res: GuestResource[] = [
      { path: iso, role: 'disk-readonly', seclabels: [] },
      { path: shared, role: 'disk-shareable', seclabels: [] },
    ];
    const a = domain('a', 8);
    const b = domain('b', 9);
    const la = await w.start(a, res);
    const lb = await w.start(b, res);
    assert.notEqual(levelOf(la), levelOf(lb));
    assert.equal(labelOf(iso), CONTENT);
    assert.equal(labelOf(shared), SHARED);
    await w.stop(a, la, res);
    assert.equal(labelOf(iso), CONTENT, 'b still runs');
    assert.equal(labelOf(shared), SHARED, 'b still runs');
    assert.deepEqual(w.memory.recall('selinux', shared)?.users, [b.uuid]);
    await w.stop(b, lb, res);
    assert.equal(labelOf(iso), HOME);
    assert.equal(labelOf(shared), HOME);
    assert.equal(stashOf(shared), undefined);
  });

  it("refuses another guest's private disk, undoing its own labels, and leaves the owner alone", async (t) => {
    const w = world(t);
    const mine = w.file('mine.img', HOME);
    const other = w.file('other.img');
    const a = domain('a', 10);
    const la = await w.start(a, [{ path: mine, role: 'disk', seclabels: [] }]);
    const b = domain('b', 11);
    const resB: GuestResource[] = [
      { path: other, role: 'disk', seclabels: [] },
      { path: mine, role: 'disk', seclabels: [] },
    ];
    const lb = w.driver.genLabel(b, w.ctx);
    await assert.rejects(
      () => setAllLabel(w.driver, b, lb, resB, w.ctx),
      (e: unknown) =>
        e instanceof SvirtError &&
        e.code === 'SVIRT_ERR_LABEL_CONFLICT' &&
        e.message === `cannot label "${mine}": guest ${a.uuid} uses it with label ${IMAGE}:${levelOf(la)}`,
    );
    assert.equal(labelOf(other), undefined, "b's first file was given back");
    assert.equal(labelOf(mine), `${IMAGE}:${levelOf(la)}`, "a's disk keeps a's label");
    assert.deepEqual(w.memory.recall('selinux', mine)?.users, [a.uuid]);
    assert.equal(w.memory.recall('selinux', other), undefined);
  });

  it('a failing path is named, and what was labelled before it is undone', async (t) => {
    const w = world(t);
    const first = w.file('first.img', HOME);
    const missing = join(w.dir, 'missing.img');
    const link = join(w.dir, 'link.img');
    symlinkSync(first, link);
    const def = domain('f', 12);
    const label = w.driver.genLabel(def, w.ctx);
    for (const [bad, errno] of [
      [missing, 'ENOENT'],
      [link, 'ELOOP'],
    ] as const) {
      const res: GuestResource[] = [
        { path: first, role: 'disk', seclabels: [] },
        { path: bad, role: 'disk', seclabels: [] },
      ];
      await assert.rejects(
        () => setAllLabel(w.driver, def, label, res, w.ctx),
        (e: unknown) =>
          e instanceof SvirtError && e.code === 'SVIRT_ERR_LABEL_APPLY' && e.message === `cannot label "${bad}": ${errno}`,
      );
      assert.equal(labelOf(first), HOME);
      assert.equal(stashOf(first), undefined);
      assert.deepEqual(w.memory.paths('selinux'), []);
    }
  });

  it('after a crash that lost the store rows, the original comes from trusted.svirt.selinux', async (t) => {
    const w = world(t);
    const img = w.file('crash.img', HOME);
    const res: GuestResource[] = [{ path: img, role: 'disk', seclabels: [] }];
    const a = domain('a', 13);
    await w.start(a, res);
    // The store is lost; the file keeps a's label and the stash.
    const fresh = world(t);
    const b = domain('b', 14);
    const lb = await fresh.start(b, res);
    assert.equal(labelOf(img), `${IMAGE}:${levelOf(lb)}`);
    assert.equal(fresh.memory.recall('selinux', img)?.original, HOME);
    await fresh.stop(b, lb, res);
    assert.equal(labelOf(img), HOME);
  });

  it('hotplug labels and restores one resource; chardev sockets are labelled, missing ones skipped', async (t) => {
    const w = world(t);
    const sock = join(w.dir, 'console.sock');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    t.after(() => server.close());
    const absent = join(w.dir, 'later.sock');
    const def = domain('h', 15);
    const res: GuestResource[] = [
      { path: sock, role: 'chardev', seclabels: [] },
      { path: absent, role: 'chardev', seclabels: [] },
    ];
    const label = await w.start(def, res);
    assert.equal(labelOf(sock), `${IMAGE}:${levelOf(label)}`);
    assert.equal(existsSync(absent), false);
    const plug = w.file('hot.img', HOME);
    const r: GuestResource = { path: plug, role: 'disk', seclabels: [] };
    w.driver.setResourceLabel(def, label, r, w.ctx);
    assert.equal(labelOf(plug), `${IMAGE}:${levelOf(label)}`);
    w.driver.restoreResourceLabel(def, label, r, w.ctx);
    assert.equal(labelOf(plug), HOME);
    await w.stop(def, label, res);
    assert.equal(labelOf(sock), undefined);
  });
});
