/**
 * The conformance cases of a block device (a loop device over a temp file), over every
 * driver: a `<disk type='block'>` node is labelled and given back exactly like an image file
 * (dac: its owner and mode; selinux: the guest's image label on the node; apparmor: a rule
 * in the guest's rules file; landlock: nothing, QEMU gets it as an fd), at start and at
 * hotplug. Also the guest's nvram: labelled for the guest, restored after.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { GuestResource } from '../../src/security/driver.js';
import { SecurityManager } from '../../src/security/manager.js';
import { SUBJECTS, reason } from './subjects.js';
import { fileState, stored, world } from './world.js';

const loopReason = ((): string | false => {
  if (process.getuid?.() !== 0) return 'needs root for losetup';
  return spawnSync('losetup', ['--version']).status === 0 ? false : 'losetup (util-linux) is not installed';
})();

/** A loop device over a sparse file in `dir`, detached when the test ends. */
function loop(t: TestContext, dir: string): string {
  const file = join(dir, 'loop-backing.img');
  const fd = openSync(file, 'w', 0o600);
  ftruncateSync(fd, 4 * 1024 * 1024);
  closeSync(fd);
  const r = spawnSync('losetup', ['--find', '--show', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, `losetup: ${r.stderr}`);
  const dev = r.stdout.trim();
  t.after(() => void spawnSync('losetup', ['-d', dev]));
  return dev;
}

describe('security driver conformance: block devices and nvram', { skip: loopReason }, () => {
  for (const s of SUBJECTS) {
    const unmarked = reason(s.marksResources);
    describe(s.name, { skip: s.skip }, () => {
      it(`labels a loop device as a disk at start and at hotplug, and gives the node back exactly${unmarked ? ` (declared: ${unmarked})` : ''}`, async (t) => {
        const w = world(t);
        const driver = s.make(w.root);
        const m = new SecurityManager([driver]);
        const dev = loop(t, w.root);
        const before = fileState(dev);
        const resources: GuestResource[] = [...w.resources(), w.resource(dev, 'disk')];
        const live = m.genLabels(w.def, w.ctx());
        await m.setAllLabel(live, resources, w.ctx());
        const label = m.liveLabel(live, driver);
        if (unmarked === undefined) assert.ok(s.marked?.(w.root, label, dev), `${s.name} marks ${dev}`);
        if (s.changesFiles === true) assert.notDeepEqual(fileState(dev), before, 'the node is the guest’s while it runs');
        else assert.deepEqual(fileState(dev), before, 'the node is untouched');
        await m.restoreAllLabel(live, stored(resources), w.ctx());
        assert.deepEqual(fileState(dev), before, 'owner, mode and labels of the node as before');
        assert.equal(s.marked?.(w.root, label, dev) ?? false, false);

        // Hotplug: the same node, one resource at a time.
        const live2 = m.genLabels(w.def, w.ctx());
        await m.setAllLabel(live2, w.resources(), w.ctx());
        const plug = w.resource(dev, 'disk');
        await m.setResourceLabel(live2, plug, w.ctx());
        if (unmarked === undefined) assert.ok(s.marked?.(w.root, m.liveLabel(live2, driver), dev));
        await m.restoreResourceLabel(live2, stored([plug])[0] as GuestResource, w.ctx());
        assert.deepEqual(fileState(dev), before, 'given back after the unplug');
        await m.restoreAllLabel(live2, stored(w.resources()), w.ctx());
        assert.deepEqual(w.store.allRemembered(), [], 'no remembered original left');
      });

      it(`marks the guest's nvram while it runs and gives it back${unmarked ? ` (declared: ${unmarked})` : ''}`, async (t) => {
        const w = world(t);
        const driver = s.make(w.root);
        const m = new SecurityManager([driver]);
        const nvram = w.path('nvram');
        const before = fileState(nvram);
        const resources = w.resources();
        const live = m.genLabels(w.def, w.ctx());
        await m.setAllLabel(live, resources, w.ctx());
        if (unmarked === undefined) assert.ok(s.marked?.(w.root, m.liveLabel(live, driver), nvram), `${s.name} marks the nvram`);
        await m.restoreAllLabel(live, stored(resources), w.ctx());
        assert.deepEqual(fileState(nvram), before);
      });
    });
  }
});
