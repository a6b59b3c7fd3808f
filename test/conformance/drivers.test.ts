/**
 * One conformance suite over every security driver (as kysely runs one suite over every
 * dialect): the same cases, through the SecurityManager as the lifecycle drives it, asserted
 * on real files (owner, mode, security.selinux and trusted.* xattrs, content), the real
 * store and the driver's own state. A case that does not apply to a driver says why in its
 * name (a declared capability, see subjects.ts) and checks the declaration instead.
 *
 * Contexts are TCG (`virtType: 'qemu'`): /dev/kvm is a host device shared with running
 * guests and other tests, so dac's ACL entry on it is left to test/e2e.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DomainDef } from '../../src/domain/domain-def.js';
import { SvirtError } from '../../src/errors.js';
import type { GuestResource, ResourceRole, SecurityDriver } from '../../src/security/driver.js';
import type { HelperSpec } from '../../src/security/helper.js';
import { SecurityManager } from '../../src/security/manager.js';
import { domain } from '../support/selinux.js';
import { SUBJECTS, reason, subject, type Subject } from './subjects.js';
import { fileState, snapshot, stored, world, type World } from './world.js';

const QEMU_BIN = '/usr/bin/qemu-system-x86_64';
const declared = (why: string | undefined): string => (why === undefined ? '' : ` (declared: ${why})`);
const isLabelError = (path: string) => (e: unknown) =>
  e instanceof SvirtError && e.code === 'SVIRT_ERR_LABEL_APPLY' && e.message === `cannot label "${path}": ENOENT`;

/** A started guest: labels generated and reserved, every resource labelled. */
async function start(w: World, m: SecurityManager, resources: readonly GuestResource[]): Promise<DomainDef> {
  const live = m.genLabels(w.def, w.ctx());
  await m.setAllLabel(live, resources, w.ctx());
  return live;
}

/** The guest's resources with a missing file of `role` after the first three (some labelled already). */
function withMissing(w: World, role: ResourceRole): { resources: GuestResource[]; missing: string } {
  const missing = join(w.root, 'gone', 'missing.img');
  const all = w.resources();
  return { resources: [...all.slice(0, 3), w.resource(missing, role), ...all.slice(3)], missing };
}

/** The partner stacked after `s`, or why the case cannot run. */
function partnerOf(s: Subject): { name: Subject['name']; missingRole: ResourceRole; skip: string | false } | { skip: string } {
  if ('no' in s.partner) return { skip: `${s.name}: ${s.partner.no}` };
  const p = subject(s.partner.name);
  return { ...s.partner, skip: p.skip === false ? false : `partner ${p.name}: ${p.skip}` };
}

function makePartner(s: Subject, root: string): SecurityDriver {
  if ('no' in s.partner) throw new Error(`${s.name} has no partner`);
  return subject(s.partner.name).make(root);
}

/** Everything a rollback or a restore must have given back. */
function assertAsBefore(w: World, s: Subject, before: { files: unknown; state: unknown }): void {
  assert.deepEqual(snapshot(w.watched), before.files, 'every file as before');
  assert.deepEqual(w.store.allRemembered(), [], 'no remembered original left');
  assert.deepEqual(s.state?.(w.root), before.state, `${s.name}'s own state as before`);
}

function setup(t: TestContext, s: Subject) {
  const w = world(t);
  const driver = s.make(w.root);
  const m = new SecurityManager([driver]);
  return { w, driver, m, before: { files: snapshot(w.watched), state: s.state?.(w.root) } };
}

describe('security driver conformance', () => {
  for (const s of SUBJECTS) {
    describe(s.name, { skip: s.skip }, () => {
      it(`genLabel gives a label ${s.reserves === true ? 'and reserves it, unique across two guests' : 'it does not reserve'}${declared(reason(s.reserves))}`, (t) => {
        const { w, driver, m } = setup(t, s);
        const b = domain('other', 2);
        const liveA = m.genLabels(w.def, w.ctx());
        const liveB = m.genLabels(b, w.ctx(b));
        const [la, lb] = [m.liveLabel(liveA, driver), m.liveLabel(liveB, driver)];
        assert.equal(la.model, s.name);
        const held = (d: DomainDef) => w.store.reservationsOf(d.uuid).filter((r) => r.driver === s.name);
        const [heldA, heldB] = [held(w.def), held(b)];
        m.reserveLabels(liveA, w.ctx()); // reconcile: the holder reserves again
        if (s.reserves === true) {
          assert.ok(la.label !== undefined && lb.label !== undefined);
          assert.notEqual(la.label, lb.label, 'two guests, two labels');
          assert.equal(heldA.length, 1);
          assert.equal(heldB.length, 1);
          assert.notDeepEqual(
            heldA.map((r) => r.label),
            heldB.map((r) => r.label),
          );
          assert.throws(() => m.reserveLabels({ ...liveA, uuid: b.uuid, name: b.name }, w.ctx(b)), SvirtError);
        } else {
          assert.deepEqual([heldA, heldB], [[], []], 'nothing reserved');
        }
        assert.deepEqual([held(w.def), held(b)], [heldA, heldB], 'reservations unchanged');
      });

      const quiet = reason(s.changesFiles);
      it(`setAllLabel then restoreAllLabel leaves every file exactly as before${declared(quiet)}`, async (t) => {
        const { w, driver, m, before } = setup(t, s);
        const resources = w.resources();
        const live = await start(w, m, resources);
        if (quiet === undefined) assert.notDeepEqual(snapshot(w.watched), before.files, 'labelled while the guest runs');
        else assert.deepEqual(snapshot(w.watched), before.files, 'no file touched while the guest runs');
        if (s.marksResources === true) assert.ok(s.marked?.(w.root, m.liveLabel(live, driver), w.path('disk')));
        if (s.state) assert.notDeepEqual(s.state(w.root), before.state, `${s.name} wrote its own state`);
        await m.restoreAllLabel(live, stored(resources), w.ctx());
        assertAsBefore(w, s, before);
        await m.restoreAllLabel(live, stored(resources), w.ctx()); // a repeated cleanup changes nothing
        assertAsBefore(w, s, before);
        assert.deepEqual(w.warnings, []);
      });

      const own = reason(s.failsOnMissingFile);
      it(
        own === undefined
          ? 'a missing file after some were labelled fails the start, rolls back what was done and leaves no remembered row'
          : `a missing file is not its failure${declared(own)}: the start goes on and restores cleanly`,
        async (t) => {
          const { w, m, before } = setup(t, s);
          const { resources, missing } = withMissing(w, 'disk');
          const live = m.genLabels(w.def, w.ctx());
          if (own === undefined) {
            await assert.rejects(() => m.setAllLabel(live, resources, w.ctx()), isLabelError(missing));
            assert.ok(w.remembered.length >= 2, `labelled before the failure: ${w.remembered.join(', ')}`);
          } else {
            await m.setAllLabel(live, resources, w.ctx());
            await m.restoreAllLabel(live, stored(resources), w.ctx());
          }
          assertAsBefore(w, s, before);
        },
      );

      const partner = partnerOf(s);
      it(
        'missingRole' in partner
          ? `a failure in ${partner.name} stacked after it (a missing ${partner.missingRole}) rolls its work back too`
          : 'a failure in a driver stacked after it rolls its work back too',
        { skip: partner.skip },
        async (t) => {
          const { w, driver, before } = setup(t, s);
          if (!('missingRole' in partner)) return;
          const m = new SecurityManager([driver, makePartner(s, w.root)]);
          const { resources, missing } = withMissing(w, partner.missingRole);
          const live = m.genLabels(w.def, w.ctx());
          await assert.rejects(() => m.setAllLabel(live, resources, w.ctx()), isLabelError(missing));
          assert.ok(
            w.remembered.some((r) => r.startsWith(`${partner.name} `)),
            `${partner.name} labelled before it failed: ${w.remembered.join(', ')}`,
          );
          if (s.changesFiles === true)
            assert.ok(
              w.remembered.some((r) => r.startsWith(`${s.name} `)),
              `${s.name} labelled`,
            );
          assertAsBefore(w, s, before);
        },
      );

      const unmarked = reason(s.marksResources);
      it(`hotplug of one resource is symmetric: set, then restore gives it back exactly${declared(unmarked)}`, async (t) => {
        const { w, driver, m, before } = setup(t, s);
        const resources = w.resources();
        const live = await start(w, m, resources);
        const label = m.liveLabel(live, driver);
        const hot = w.path('hot');
        const plug = w.resource(hot, 'disk');
        await m.setResourceLabel(live, plug, w.ctx());
        if (unmarked === undefined) assert.ok(s.marked?.(w.root, label, hot), 'the hotplugged disk carries the mark');
        if (s.changesFiles === true) assert.notDeepEqual(fileState(hot), before.files[hot]);
        else assert.deepEqual(fileState(hot), before.files[hot], 'the hotplugged file is untouched');
        await m.restoreResourceLabel(live, stored([plug])[0] as GuestResource, w.ctx());
        assert.deepEqual(fileState(hot), before.files[hot], 'the hotplugged file as before');
        assert.equal(s.marked?.(w.root, label, hot) ?? false, false, 'no mark left on it');
        assert.deepEqual(
          w.store.allRemembered().filter((r) => r.path === hot),
          [],
        );
        if (unmarked === undefined) assert.ok(s.marked?.(w.root, label, w.path('disk')), 'the other resources keep theirs');
        await m.restoreAllLabel(live, stored(resources), w.ctx());
        assertAsBefore(w, s, before);
      });

      it('a restore of a resource swapped after labelling leaves the new target untouched and reports it', async (t) => {
        const { w, m, before } = setup(t, s);
        const resources = w.resources();
        const live = await start(w, m, resources);
        // The disk's directory becomes a link to a directory holding a root file of the same name.
        const shadowDisk = w.victim('victims/a.img');
        renameSync(join(w.root, 'images'), join(w.root, 'images.moved'));
        symlinkSync(join(w.root, 'victims'), join(w.root, 'images'));
        // The nvram is replaced by another file (another inode).
        const nvram = w.path('nvram');
        writeFileSync(`${nvram}.new`, 'another file\n');
        renameSync(`${nvram}.new`, nvram);
        // The serial log becomes a link to a root file.
        const shadow = w.victim('victims/shadow');
        rmSync(w.path('serial'));
        symlinkSync(shadow, w.path('serial'));
        const swapped = [shadowDisk, shadow, nvram, w.path('serial')];
        const victims = snapshot(swapped);
        await m.restoreAllLabel(live, stored(resources), w.ctx());
        assert.deepEqual(snapshot(swapped), victims, 'what the paths name now is untouched');
        for (const file of ['disk', 'nvram', 'serial'] as const) {
          const path = w.path(file);
          assert.ok(
            w.warnings.some((x) => x.includes(`"${path}" is no longer the file svirt labelled`)),
            `reported: ${path} in ${JSON.stringify(w.warnings)}`,
          );
        }
        assert.equal(w.warnings.length, 3);
        for (const file of ['runtime', 'iso', 'kernel'] as const) {
          assert.deepEqual(fileState(w.path(file)), before.files[w.path(file)], `${file} restored`);
        }
        assert.deepEqual(w.store.allRemembered(), [], 'the swapped paths are forgotten, the rest restored');
        assert.deepEqual(s.state?.(w.root), before.state);
      });

      const silent = reason(s.describesDisk);
      it(`dry run (manager.dryRun over describe) touches nothing${declared(silent)}`, (t) => {
        const { w, m } = setup(t, s);
        const live = m.genLabels(w.def, w.ctx());
        const now = () => ({
          files: snapshot(w.watched),
          remembered: w.store.allRemembered(),
          reserved: w.store.reservationsOf(w.def.uuid),
          state: s.state?.(w.root),
        });
        const before = now();
        const sections = m.dryRun(live, w.resources(), w.ctx());
        assert.deepEqual(now(), before);
        assert.deepEqual(
          sections.map((x) => x.driver),
          [s.name],
        );
        const text = sections[0]?.text ?? '';
        assert.notEqual(text.trim(), '');
        assert.equal(text.includes(w.path('disk')), silent === undefined, text);
      });

      it(`confinement() gives a part the manager merges: ${s.confines.keys.join(', ') || 'nothing'}${declared(s.confines.why)}`, (t) => {
        const { w, driver, m } = setup(t, s);
        const resources = w.resources();
        const base = ['version', 'rlimits', 'noNewPrivs', 'keepFds'];
        const ownKeys = (spec: object): string[] =>
          Object.keys(spec)
            .filter((k) => !base.includes(k))
            .sort();
        const spec = m.confinement(m.genLabels(w.def, w.ctx()), resources, w.ctx(), [3]);
        assert.deepEqual(ownKeys(spec), [...s.confines.keys].sort());
        assert.deepEqual([spec.version, spec.noNewPrivs, spec.keepFds], [1, true, [3]]);
        assert.ok(
          spec.rlimits.some((r) => r.resource === 'core' && r.hard === 0),
          'no core dumps',
        );
        const p = partnerOf(s);
        if (p.skip !== false || !('missingRole' in p)) {
          t.diagnostic(`not stacked: ${p.skip}`);
          return;
        }
        const stacked = new SecurityManager([driver, makePartner(s, w.root)]);
        const other = domain('stacked', 3);
        const both = stacked.confinement(stacked.genLabels(other, w.ctx(other)), resources, w.ctx(other), [3]);
        assert.deepEqual(ownKeys(both), [...new Set([...s.confines.keys, ...subject(p.name).confines.keys])].sort());
      });

      it(`a helper process gets its guest's confinement (${s.confines.keys.join(', ') || 'nothing'}), given back with the guest's${declared(s.confines.why)}`, async (t) => {
        const { w, m, before } = setup(t, s);
        const resources = w.resources();
        const live = await start(w, m, resources);
        const state = w.path('runtime');
        const helper: HelperSpec = {
          kind: 'swtpm',
          id: 'tpm0',
          binary: '/usr/bin/true',
          paths: [{ path: state, access: 'tree-write' }],
          log: join(w.root, 'tpm0.log'),
        };
        const ownKeys = (spec: object): string[] =>
          Object.keys(spec)
            .filter((k) => !['version', 'rlimits', 'noNewPrivs', 'keepFds'].includes(k))
            .sort();
        const dry = await m.dryRunHelper(live, helper, w.ctx());
        assert.deepEqual(
          dry.map((x) => x.driver),
          [s.name],
        );
        assert.notEqual(dry[0]?.text.trim(), '', 'the dry run says something');
        const spec = await m.helperConfinement(live, helper, w.ctx(), [4]);
        const qemu = m.confinement(live, resources, w.ctx(), [4]);
        assert.deepEqual(ownKeys(spec), [...s.confines.keys].sort(), 'the same process fields as its QEMU');
        assert.deepEqual([spec.uid, spec.gid, spec.groups], [qemu.uid, qemu.gid, qemu.groups], 'its guest’s ids');
        assert.deepEqual([spec.noNewPrivs, spec.keepFds], [true, [4]]);
        if (spec.landlock) {
          const paths = spec.landlock.pathRules.map((r) => r.path);
          assert.ok(paths.includes(helper.binary) && paths.includes(state), `its program and its state: ${paths.join(' ')}`);
          assert.ok(!paths.includes(QEMU_BIN), 'nothing of its QEMU');
        }
        if (s.state) assert.ok(JSON.stringify(s.state(w.root)).includes('-tpm0'), `${s.name} wrote the helper's own state`);
        await m.restoreAllLabel(live, stored(resources), w.ctx());
        assertAsBefore(w, s, before);
      });
    });
  }
});
