/**
 * sVirt under a kernel that enforces AppArmor (the enforcement lab's second VM): the profile
 * svirt-<uuid> is loaded in enforce mode while its guest runs and confines its QEMU, a
 * compromised monitor is denied what is not the guest's, a hotplugged disk works once the
 * profile names it, and stop unloads the profile.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { QmpClient } from '../../src/qemu/qmp-client.js';
import { countRows, domainXml, procStatus, writeDomain } from '../helpers.js';
import {
  alive,
  apparmorDenials,
  eventually,
  filledWith,
  guest,
  imageBytes,
  kernelLog,
  LabDirs,
  labImage,
  labSkip,
  openThroughMonitor,
  procLabel,
  qemuIo,
  qmpConnect,
  run,
  svirtOk,
  svirtRun,
  guestAppArmorLabel,
} from './lab.js';

const skip = labSkip('apparmor');
const FULL = ['--security-driver', 'apparmor,dac,landlock'];
const ALONE = ['--security-driver', 'apparmor'];
const PROFILE_DIR = process.env['SVIRT_APPARMOR_PROFILE_DIR'] ?? '/etc/apparmor.d/svirt';
const dirs = new LabDirs();
after(() => dirs.cleanup());

/** The kernel's list of loaded profiles: name -> mode. */
function loadedProfiles(): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of readFileSync('/sys/kernel/security/apparmor/profiles', 'utf8').split('\n')) {
    const r = /^(.*) \((\w+)\)$/.exec(line);
    if (r?.[1] !== undefined && r[2] !== undefined) m.set(r[1], r[2]);
  }
  return m;
}

/** aa-status's view (its JSON output): profile name -> mode. */
function aaStatus(): Record<string, string> {
  const r = run('aa-status', ['--json']);
  assert.equal(r.code, 0, `aa-status --json: ${r.out}`);
  // with no profile loaded at all it prints nothing
  if (r.out.trim() === '') return {};
  const doc = JSON.parse(r.out) as { profiles?: Record<string, string> };
  return doc.profiles ?? {};
}

async function defineGuests(dir: string, stack: readonly string[], names: readonly string[]): Promise<Map<string, string>> {
  const images = new Map<string, string>();
  for (const n of names) {
    const img = labImage(join(dir, `${n}.img`), 4);
    images.set(n, img);
    await svirtOk(dir, [...stack, 'define', writeDomain(dir, n, domainXml(n, [{ path: img, dev: 'vda' }]))]);
  }
  return images;
}

function image(images: Map<string, string>, name: string): string {
  const p = images.get(name);
  assert.ok(p !== undefined, `image of ${name}`);
  return p;
}

describe('AppArmor enforcing: svirt with apparmor,dac,landlock', { skip }, () => {
  let dir: string;
  let images: Map<string, string>;
  before(async () => {
    dir = dirs.make('svirt-enforce-aa-');
    images = await defineGuests(dir, FULL, ['ga', 'gb']);
  });

  it('loads svirt-<uuid> in enforce mode for each running guest and starts its QEMU under it', async () => {
    const started = await Promise.all(['ga', 'gb'].map((n) => svirtRun(dir, [...FULL, 'start', n, '--paused'])));
    for (const r of started) assert.equal(r.code, 0, `svirt start: ${r.stderr}`);
    const profiles = loadedProfiles();
    const status = aaStatus();
    for (const n of ['ga', 'gb']) {
      const { pid, uuid } = guest(dir, n);
      const name = `svirt-${uuid}`;
      assert.equal(profiles.get(name), 'enforce', `${name} is loaded in enforce mode`);
      assert.equal(status[name], 'enforce', `aa-status lists ${name} in enforce mode`);
      assert.equal(procLabel(pid, 'apparmor'), guestAppArmorLabel(name), `QEMU of ${n} is confined by ${name}`);
      assert.equal(procStatus(pid).get('NoNewPrivs'), '1');
      assert.ok(
        existsSync(join(PROFILE_DIR, name)) && existsSync(join(PROFILE_DIR, `${name}.files`)),
        'profile files are written',
      );
    }
    const info = await svirtOk(dir, [...FULL, 'dominfo', 'ga']);
    assert.match(info, /^Security model: apparmor$/m);
  });

  it("denies guest A's monitor B's image and /etc/shadow, while A's own disk works", async () => {
    const q = await qmpConnect(guest(dir, 'ga').qmp);
    try {
      for (const ro of [false, true]) {
        assert.match(await openThroughMonitor(q, image(images, 'gb'), `b${ro ? 'ro' : 'rw'}`, ro), /Permission denied/);
        assert.match(await openThroughMonitor(q, '/etc/shadow', `shadow${ro ? 'ro' : 'rw'}`, ro), /Permission denied/);
      }
      await qemuIo(q, 'vda', 'write -P 0x5a 0 4k');
      assert.ok(filledWith(imageBytes(image(images, 'ga'), 0, 4096), 0x5a), "A's write reached its image");
    } finally {
      q.close();
    }
  });

  it('unloads the profile and deletes its files when the guest stops', async () => {
    for (const n of ['ga', 'gb']) {
      const { pid, uuid } = guest(dir, n);
      await svirtOk(dir, [...FULL, 'destroy', n]);
      assert.ok(!alive(pid), 'QEMU is gone');
      const name = `svirt-${uuid}`;
      assert.equal(loadedProfiles().has(name), false, `${name} is unloaded`);
      assert.equal(name in aaStatus(), false, `aa-status no longer lists ${name}`);
      assert.equal(existsSync(join(PROFILE_DIR, name)), false, 'the profile file is deleted');
      assert.equal(existsSync(join(PROFILE_DIR, `${name}.files`)), false, 'the rules file is deleted');
    }
    assert.equal(countRows(dir, 'reservations'), 0);
    assert.equal(countRows(dir, 'running'), 0);
  });
});

describe('AppArmor enforcing: svirt with the apparmor driver alone (QEMU as root, only AppArmor in the way)', { skip }, () => {
  let dir: string;
  let images: Map<string, string>;
  let q: QmpClient | undefined;
  before(async () => {
    dir = dirs.make('svirt-enforce-aa1-');
    images = await defineGuests(dir, ALONE, ['ga', 'gb']);
    for (const n of ['ga', 'gb']) await svirtOk(dir, [...ALONE, 'start', n, '--paused']);
    q = await qmpConnect(guest(dir, 'ga').qmp);
  });
  after(() => q?.close());

  it('denies guest A\'s monitor B\'s image and /etc/shadow (apparmor="DENIED" in the kernel log)', async () => {
    const ga = guest(dir, 'ga');
    assert.ok(q !== undefined);
    assert.equal(procStatus(ga.pid).get('Uid')?.split(/\s+/)[0], '0', 'QEMU runs as root: DAC lets everything through');
    const profile = `profile="svirt-${ga.uuid}"`;
    const mark = kernelLog.mark();
    assert.match(await openThroughMonitor(q, image(images, 'gb'), 'steal', false), /Permission denied/);
    assert.match(await openThroughMonitor(q, '/etc/shadow', 'shadow', true), /Permission denied/);
    const deniedB = await eventually(() => apparmorDenials(mark, profile, `name="${image(images, 'gb')}"`));
    assert.ok(deniedB.length > 0, `a DENIED record for B's image:\n${kernelLog.since(mark).join('\n')}`);
    const deniedShadow = await eventually(() => apparmorDenials(mark, profile, 'name="/etc/shadow"'));
    assert.ok(deniedShadow.length > 0, `a DENIED record for /etc/shadow:\n${kernelLog.since(mark).join('\n')}`);
    // The same records, found by the guest's label through the CLI (issue 15).
    const found = JSON.parse(await svirtOk(dir, [...ALONE, '--json', 'audit', '--kernel', '--guest', 'ga'])) as {
      role: string;
      lsm: string;
      name?: string;
      label: string;
    }[];
    for (const name of [image(images, 'gb'), '/etc/shadow'])
      assert.ok(
        found.some((d) => d.role === 'subject' && d.lsm === 'apparmor' && d.name === name && d.label === `svirt-${ga.uuid}`),
        `svirt audit --kernel --guest ga finds the denial of ${name}: ${JSON.stringify(found)}`,
      );
    await qemuIo(q, 'vda', 'write -P 0x33 0 4k');
    assert.ok(filledWith(imageBytes(image(images, 'ga'), 0, 4096), 0x33), "A's own disk works");
  });

  it('lets a hotplugged disk work once attach-disk has updated the profile', async () => {
    const ga = guest(dir, 'ga');
    q ??= await qmpConnect(ga.qmp);
    const extra = labImage(join(dir, 'extra.img'), 4);
    const rules = join(PROFILE_DIR, `svirt-${ga.uuid}.files`);
    assert.equal(readFileSync(rules, 'utf8').includes(extra), false, 'the profile does not name the new image yet');
    const mark = kernelLog.mark();
    assert.match(
      await openThroughMonitor(q, extra, 'early', false),
      /Permission denied/,
      'before the attach, QEMU may not open it',
    );
    assert.ok((await eventually(() => apparmorDenials(mark, `name="${extra}"`))).length > 0, 'denied by AppArmor');

    // QEMU serves one QMP client at a time: svirt needs the monitor for the attach.
    // A SCSI disk (sdb, on the guest's virtio-scsi controller): it can be unplugged again
    // without a guest OS, unlike a virtio-blk PCI device
    q.close();
    q = undefined;
    const r = await svirtRun(dir, [...ALONE, 'attach-disk', 'ga', extra, 'sdb', '--live']);
    q = await qmpConnect(ga.qmp);
    assert.equal(r.code, 0, `svirt attach-disk: ${r.stderr}`);
    assert.ok(readFileSync(rules, 'utf8').includes(extra), 'the profile names the new image');
    assert.equal(loadedProfiles().get(`svirt-${ga.uuid}`), 'enforce', 'the replaced profile is still enforcing');
    assert.equal(procLabel(ga.pid, 'apparmor'), guestAppArmorLabel(`svirt-${ga.uuid}`));
    await qemuIo(q, 'sdb', 'write -P 0x44 0 4k');
    assert.ok(filledWith(imageBytes(extra, 0, 4096), 0x44), 'a write on the hotplugged disk reached its image');
    // B's image stays out of reach after the profile was replaced
    assert.match(await openThroughMonitor(q, image(images, 'gb'), 'steal2', false), /Permission denied/);
  });

  it('refuses to take a disk out of a running guest while the manager is confined (fail closed)', async () => {
    const ga = guest(dir, 'ga');
    const extra = join(dir, 'extra.img');
    const rules = join(PROFILE_DIR, `svirt-${ga.uuid}.files`);
    assert.ok(readFileSync(rules, 'utf8').includes(extra), 'the disk attached by the test before is in the profile');
    q?.close();
    q = undefined;
    // QEMU runs as svirt-<uuid>//&svirt-manager; a replaced guest profile was found not to take
    // the detached image out of its reach (docs/confinement.md), so svirt refuses the detach.
    const r = await svirtRun(dir, [...ALONE, 'detach-disk', 'ga', 'sdb', '--live']);
    assert.notEqual(r.code, 0, 'detach-disk is refused');
    assert.match(r.stderr, /cannot take sdb out of 'ga' while it runs: svirt runs confined by AppArmor \(svirt-manager\)/);
    assert.ok(readFileSync(rules, 'utf8').includes(extra), 'the guest keeps the disk, and svirt says so');
    q = await qmpConnect(ga.qmp);
  });

  it('unloads both profiles on stop', async () => {
    q?.close();
    q = undefined;
    const uuids = ['ga', 'gb'].map((n) => guest(dir, n).uuid);
    for (const n of ['ga', 'gb']) await svirtOk(dir, [...ALONE, 'destroy', n]);
    const loaded = loadedProfiles();
    for (const u of uuids) assert.equal(loaded.has(`svirt-${u}`), false, `svirt-${u} is unloaded`);
    // svirt-manager is the manager's own profile (docs/confinement.md), not a guest's
    const left = [...loaded.keys()].filter((p) => p.startsWith('svirt-') && p !== 'svirt-manager');
    assert.deepEqual(left, [], 'no svirt profile is left in the kernel');
  });
});
