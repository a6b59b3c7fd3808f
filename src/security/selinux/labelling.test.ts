/**
 * The SELinux driver labelling real files with real xattrs (userspace test mode: this
 * kernel does not enforce the labels, it only stores them). Needs root (security.* and
 * trusted.* xattrs) and the native addon.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { GuestResource } from '../driver.js';
import { CONTENT, HOME, IMAGE, labelOf, levelOf, skipFiles, stashOf, world } from '../../../test/support/selinux-files.js';
import { disk, domain, withSeclabel } from '../../../test/support/selinux.js';
import { restoreAllLabel } from '../../../test/support/stack.js';

describe('SelinuxDriver labelling real files', { skip: skipFiles }, () => {
  it('dynamic: private files get the image label, read-only ones the content label, all restored', async (t) => {
    const w = world(t);
    const img = w.file('a.img', HOME);
    const iso = w.file('cd.iso');
    const kernel = w.file('vmlinuz', 'system_u:object_r:boot_t:s0');
    const initrd = w.file('initrd');
    const nvram = w.file('VARS.fd');
    const log = w.file('serial.log');
    const run = join(w.dir, 'run');
    mkdirSync(run);
    const state = w.file('saved.state');
    const def = domain('a', 1, { disks: [disk(img), disk(iso, { device: 'cdrom', readonly: true })] });
    const resources: GuestResource[] = [
      { path: run, role: 'runtime-dir', seclabels: [] },
      { path: kernel, role: 'kernel', seclabels: [] },
      { path: initrd, role: 'initrd', seclabels: [] },
      { path: nvram, role: 'nvram', seclabels: [] },
      { path: img, role: 'disk', seclabels: [] },
      { path: iso, role: 'disk-readonly', seclabels: [] },
      { path: log, role: 'chardev', seclabels: [] },
      { path: state, role: 'saved-state', seclabels: [] },
    ];
    const label = await w.start(def, resources);
    const level = levelOf(label);
    assert.match(level, /^s0:c\d+,c\d+$/);
    assert.equal(label.imagelabel, `${IMAGE}:${level}`);
    for (const p of [run, nvram, img, log, state]) assert.equal(labelOf(p), `${IMAGE}:${level}`, p);
    for (const p of [kernel, initrd, iso]) assert.equal(labelOf(p), CONTENT, p);
    assert.equal(stashOf(img), HOME);
    assert.equal(stashOf(iso), '<none>');
    assert.equal(stashOf(kernel), 'system_u:object_r:boot_t:s0');

    await w.stop(def, label, resources);
    assert.equal(labelOf(img), HOME);
    assert.equal(labelOf(kernel), 'system_u:object_r:boot_t:s0');
    for (const p of [run, nvram, log, state, iso, initrd]) assert.equal(labelOf(p), undefined, `${p} had no label`);
    for (const r of resources) assert.equal(stashOf(r.path), undefined, r.path);
    assert.deepEqual(w.memory.paths('selinux'), []);
    // Idempotent: a second restore (a repeated cleanup) changes nothing.
    await restoreAllLabel(w.driver, def, label, resources, w.ctx);
    assert.equal(labelOf(img), HOME);
  });

  it("static relabel='yes': images at the static level; relabel='no' (the default) touches nothing", async (t) => {
    const w = world(t);
    const img = w.file('s.img', HOME);
    const static1 = 'system_u:system_r:svirt_t:s0:c7,c8';
    const res: GuestResource[] = [{ path: img, role: 'disk', seclabels: [] }];
    const def = withSeclabel(domain('s', 2), { type: 'static', relabel: true, label: static1 });
    const label = await w.start(def, res);
    assert.deepEqual(label, { type: 'static', model: 'selinux', relabel: true, label: static1, imagelabel: `${IMAGE}:s0:c7,c8` });
    assert.equal(labelOf(img), `${IMAGE}:s0:c7,c8`);
    await w.stop(def, label, res);
    assert.equal(labelOf(img), HOME);

    const def2 = withSeclabel(domain('s2', 3), { type: 'static', label: 'system_u:system_r:svirt_t:s0:c9,c10' });
    const label2 = await w.start(def2, res);
    assert.equal(label2.relabel, false);
    assert.equal(labelOf(img), HOME, 'relabel=no leaves the file alone');
    assert.equal(stashOf(img), undefined);
    await w.stop(def2, label2, res);
    assert.equal(labelOf(img), HOME);
  });

  it('<imagelabel> of a static label is what images get', async (t) => {
    const w = world(t);
    const img = w.file('i.img');
    const res: GuestResource[] = [{ path: img, role: 'disk', seclabels: [] }];
    const def = withSeclabel(domain('i', 4), {
      type: 'static',
      relabel: true,
      label: 'system_u:system_r:svirt_t:s0:c1,c2',
      imagelabel: 'system_u:object_r:svirt_image_t:s0:c2,c1',
    });
    const label = await w.start(def, res);
    assert.equal(label.imagelabel, `${IMAGE}:s0:c1,c2`);
    assert.equal(labelOf(img), `${IMAGE}:s0:c1,c2`);
    await w.stop(def, label, res);
    assert.equal(labelOf(img), undefined);
  });

  it('<baselabel> chooses the process type and keeps the generated level for images', async (t) => {
    const w = world(t);
    const img = w.file('b.img');
    const res: GuestResource[] = [{ path: img, role: 'disk', seclabels: [] }];
    const def = withSeclabel(domain('b', 5), { type: 'dynamic', baselabel: 'system_u:system_r:svirt_prot_exec_t:s0' });
    const label = await w.start(def, res);
    const level = levelOf(label);
    assert.equal(label.label, `system_u:system_r:svirt_prot_exec_t:${level}`);
    assert.equal(label.baselabel, 'system_u:system_r:svirt_prot_exec_t:s0');
    assert.equal(labelOf(img), `${IMAGE}:${level}`);
    await w.stop(def, label, res);
    assert.equal(labelOf(img), undefined);
  });

  it("per-disk relabel='no' and <label> overrides, including for backing layers", async (t) => {
    const w = world(t);
    const keep = w.file('keep.img', HOME);
    const own = w.file('own.img');
    const ownBase = w.file('own-base.qcow2');
    const foreign = w.file('foreign.img', HOME);
    const custom = 'system_u:object_r:svirt_image_t:s0:c5,c6';
    const res: GuestResource[] = [
      { path: keep, role: 'disk', seclabels: [{ model: 'selinux', relabel: false }] },
      { path: own, role: 'disk', seclabels: [{ label: custom }] },
      { path: ownBase, role: 'backing', seclabels: [{ label: custom }] },
      { path: foreign, role: 'disk', seclabels: [{ model: 'dac', relabel: false }] },
    ];
    const def = domain('o', 6);
    const label = await w.start(def, res);
    assert.equal(labelOf(keep), HOME);
    assert.equal(labelOf(own), custom);
    assert.equal(labelOf(ownBase), custom);
    assert.equal(labelOf(foreign), `${IMAGE}:${levelOf(label)}`, "another model's seclabel does not apply");
    await w.stop(def, label, res);
    assert.equal(labelOf(keep), HOME);
    assert.equal(labelOf(own), undefined);
    assert.equal(labelOf(ownBase), undefined);
    assert.equal(labelOf(foreign), HOME);
  });

  it('backing chain: the top carries the image label, every layer below the content label', async (t) => {
    const w = world(t);
    const base = w.file('base.qcow2', HOME);
    const mid = w.file('mid.qcow2');
    const top = w.file('top.qcow2');
    const d = disk(top, {
      format: 'qcow2',
      backingStore: { type: 'file', format: 'qcow2', path: mid, backingStore: { type: 'file', format: 'raw', path: base } },
    });
    const res: GuestResource[] = [
      { path: top, role: 'disk', seclabels: [], disk: d },
      { path: mid, role: 'backing', seclabels: [], disk: d },
      { path: base, role: 'backing', seclabels: [], disk: d },
    ];
    const def = domain('chain', 7, { disks: [d] });
    const label = await w.start(def, res);
    assert.equal(labelOf(top), `${IMAGE}:${levelOf(label)}`);
    assert.equal(labelOf(mid), CONTENT);
    assert.equal(labelOf(base), CONTENT);
    await w.stop(def, label, res);
    assert.equal(labelOf(top), undefined);
    assert.equal(labelOf(mid), undefined);
    assert.equal(labelOf(base), HOME);
  });
});
