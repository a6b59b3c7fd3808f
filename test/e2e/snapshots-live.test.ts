/**
 * Live external (disk-only) snapshots with real QEMU under dac,landlock (docs/snapshots.md,
 * "Live external snapshots"): the guest writes through QEMU before and after the snapshot, and
 * the bytes land in the base and in the overlay respectively; QEMU holds the base O_RDONLY and
 * the overlay O_RDWR; owners and modes while the guest runs and after it stops; the chain in
 * the live XML and the definition, used by the next start; a paused guest; the refusals and
 * every crash point, each leaving the guest on its old chain (or, after the switch, finished).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SNAPSHOT_CRASH_POINTS } from '../../src/lifecycle/crash-points.js';
import { lgetxattr } from '../../src/host/native.js';
import { QmpClient } from '../../src/qemu/qmp-client.js';
import { domainXml, owner, qemuAsRootSkip, readRunning, scratch, svirt, svirtOk, writeDomain } from '../helpers.js';
import { accessModes } from '../support/fd-flags.js';

const S = ['--security-driver', 'dac,landlock'];
const ORIGINAL = { uid: 1000, gid: 1000, mode: 0o644 };

function qcow2(path: string): string {
  const r = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', path, '16M'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  chownSync(path, ORIGINAL.uid, ORIGINAL.gid);
  spawnSync('chmod', ['644', path]);
  return path;
}

/** qemu-io on a stopped image, opened alone (no backing file): does it hold the pattern at 0? */
function holds(path: string, pattern: string, withBacking = false): boolean {
  const image = withBacking ? path : `json:{"driver":"qcow2","backing":null,"file":{"driver":"file","filename":"${path}"}}`;
  const args = withBacking ? ['-f', 'qcow2', '-r', image] : ['-r', image];
  const out = spawnSync('qemu-io', [...args, '-c', `read -P ${pattern} 0 4k`], { encoding: 'utf8' }).stdout;
  return out.includes('bytes') && !out.includes('Pattern verification failed');
}

function row(dir: string, name: string) {
  const r = readRunning(dir).find((x) => x.name === name);
  assert.ok(r, `${name} runs`);
  return r;
}

/** The guest's disk through its own QEMU (HMP qemu-io on the device's block backend). */
async function guestIo(dir: string, name: string, cmd: string): Promise<string> {
  const q = await QmpClient.connect(join(dir, 'run', 'monitor', `${row(dir, name).uuid}.sock`));
  try {
    return await q.hmp(`qemu-io -d /machine/peripheral/disk-vda/virtio-backend "${cmd}"`);
  } finally {
    q.close();
  }
}

async function qmp<T>(dir: string, name: string, command: string): Promise<T> {
  const q = await QmpClient.connect(join(dir, 'run', 'monitor', `${row(dir, name).uuid}.sock`));
  try {
    return (await q.execute(command)) as T;
  } finally {
    q.close();
  }
}

function guestUid(dir: string, name: string): number {
  return Number(/model='dac'[^>]*>\s*<label>\+(\d+):/.exec(row(dir, name).live_xml)?.[1]);
}

async function defineAndStart(dir: string, name: string, extra: string[] = []): Promise<string> {
  const img = qcow2(join(dir, 'base.qcow2'));
  await svirtOk(dir, ['define', writeDomain(dir, name, domainXml(name, [{ path: img, dev: 'vda', format: 'qcow2' }]))]);
  await svirtOk(dir, [...S, 'start', name, ...extra]);
  return img;
}

const chain = (overlay: string, base: string) =>
  new RegExp(`<source file='${overlay}'/>\\s*<backingStore type='file'>\\s*<format type='qcow2'/>\\s*<source file='${base}'/>`);

describe('live external snapshots (real QEMU, dac,landlock)', { skip: qemuAsRootSkip('the dac driver needs root') }, () => {
  it('a running guest: writes before go to the base, after to the overlay; fds, owners and the chain', async (t) => {
    const dir = scratch(t);
    const img = await defineAndStart(dir, 'g');
    const uid = guestUid(dir, 'g');
    assert.equal(owner(img).uid, uid, 'the base is the guest’s while it is the top');
    assert.doesNotMatch(await guestIo(dir, 'g', 'write -P 0xaa 0 4k'), /error|fail/i);
    const overlay = join(dir, 'top.qcow2');
    assert.match(
      await svirtOk(dir, [...S, 'snapshot-create-as', 'g', 's1', '--disk-only', '--diskspec', `vda,file=${overlay}`]),
      /Domain snapshot s1 created/,
    );
    const pid = row(dir, 'g').pid ?? 0;
    const base = accessModes(pid, img);
    assert.ok(base.length > 0, 'QEMU holds the base');
    assert.deepEqual([...new Set(base)], [0], 'QEMU holds the base O_RDONLY only');
    const top = accessModes(pid, overlay);
    assert.ok(top.length > 0 && top.every((m) => m === 2), 'and the overlay O_RDWR');
    assert.deepEqual(owner(img), { ...ORIGINAL }, 'the base is back to its owner and mode: a read-only backing layer');
    assert.deepEqual(owner(overlay), { uid, gid: owner(overlay).gid, mode: 0o600 }, 'the overlay is the guest’s, 0600');
    assert.notEqual(owner(overlay).gid, 0);
    const nodes = await qmp<{ 'node-name': string; ro: boolean; file: string }[]>(dir, 'g', 'query-named-block-nodes');
    assert.ok(
      nodes.some((n) => n['node-name'] === 'vda-fmt1' && !n.ro),
      'the overlay is the new top, vda-fmt1',
    );
    assert.ok(
      nodes.some((n) => n['node-name'] === 'vda-file0' && n.ro),
      'the base keeps its name and is read-only',
    );

    assert.doesNotMatch(await guestIo(dir, 'g', 'write -P 0xbb 0 4k'), /error|fail/i);
    assert.doesNotMatch(await guestIo(dir, 'g', 'read -P 0xbb 0 4k'), /error|fail|verification/i);
    assert.match(await svirtOk(dir, ['dumpxml', 'g']), chain(overlay, img), 'the live XML shows overlay over base');
    assert.match(await svirtOk(dir, ['dumpxml', 'g', '--inactive']), chain(overlay, img), 'and the definition');
    assert.match(await svirtOk(dir, ['snapshot-list', 'g']), /s1\s+.*disk-snapshot$/m);
    assert.match(await svirtOk(dir, ['snapshot-dumpxml', 'g', 's1']), new RegExp(`<source file='${overlay}'/>`));

    await svirtOk(dir, [...S, 'destroy', 'g']);
    assert.deepEqual(owner(overlay), { uid: 0, gid: 0, mode: 0o600 }, 'the overlay given back at stop');
    assert.deepEqual(owner(img), { ...ORIGINAL });
    assert.ok(holds(img, '0xaa'), 'the pattern written before is in the base');
    assert.ok(!holds(img, '0xbb'), 'the one written after is not');
    assert.ok(holds(overlay, '0xbb'), 'it is in the overlay');

    // The next start runs on the new chain.
    await svirtOk(dir, [...S, 'start', 'g']);
    const pid2 = row(dir, 'g').pid ?? 0;
    assert.deepEqual([...new Set(accessModes(pid2, img))], [0]);
    assert.deepEqual([...new Set(accessModes(pid2, overlay))], [2]);
    assert.doesNotMatch(await guestIo(dir, 'g', 'read -P 0xbb 0 4k'), /error|fail|verification/i);
    // A second live snapshot stacks: the names below stay.
    const second = join(dir, 'top2.qcow2');
    await svirtOk(dir, [...S, 'snapshot-create-as', 'g', 's2', '--disk-only', '--diskspec', `vda,file=${second}`]);
    const pid3 = row(dir, 'g').pid ?? 0;
    assert.deepEqual([...new Set(accessModes(pid3, overlay))], [0], 'the first overlay is now read-only');
    assert.deepEqual(owner(overlay), { uid: 0, gid: 0, mode: 0o600 });
    assert.match(await svirtOk(dir, ['snapshot-info', 'g', 's2']), /^Parent:\s+s1$/m);
    await svirtOk(dir, [...S, 'destroy', 'g']);
    assert.deepEqual(owner(second), { uid: 0, gid: 0, mode: 0o600 });
  });

  it('selinux (userspace-test),dac,landlock: the base gets the label a backing layer gets at a start', async (t) => {
    const dir = scratch(t);
    const SE = ['--security-driver', 'selinux,dac,landlock'];
    const env = { SVIRT_SELINUX_MODE: 'userspace-test' };
    const label = (path: string) => lgetxattr(path, 'security.selinux')?.toString().replace(/\0$/, '');
    const img = qcow2(join(dir, 'base.qcow2'));
    await svirtOk(dir, ['define', writeDomain(dir, 'se', domainXml('se', [{ path: img, dev: 'vda', format: 'qcow2' }]))], env);
    await svirtOk(dir, [...SE, 'start', 'se'], env);
    const image = label(img);
    assert.match(image ?? '', /svirt_image_t:s0:c\d+,c\d+$/);
    await svirtOk(dir, [...SE, 'snapshot-create-as', 'se', 'se1', '--disk-only'], env);
    const overlay = join(dir, 'base.se1');
    const whileRunning = label(img);
    assert.equal(label(overlay), image, 'the overlay gets the guest’s image label');
    await svirtOk(dir, [...SE, 'destroy', 'se'], env);
    assert.equal(label(img), undefined, 'given back at stop');
    assert.equal(label(overlay), undefined);
    await svirtOk(dir, [...SE, 'start', 'se'], env);
    assert.equal(whileRunning, label(img), 'the same label a start gives the backing layer');
    assert.match(whileRunning ?? '', /virt_content_t/);
    await svirtOk(dir, [...SE, 'destroy', 'se'], env);
  });

  it('a paused guest: the read-write fd of the base stays until it runs again', async (t) => {
    const dir = scratch(t);
    const img = await defineAndStart(dir, 'p', ['--paused']);
    const overlay = join(dir, 'base.p1');
    await svirtOk(dir, [...S, 'snapshot-create-as', 'p', 'p1', '--disk-only']);
    assert.ok(existsSync(overlay), 'the default overlay name, as libvirt names it');
    const pid = row(dir, 'p').pid ?? 0;
    assert.deepEqual(owner(img), { ...ORIGINAL }, 'the base’s labels are a backing layer’s at once');
    assert.deepEqual([...new Set(accessModes(pid, overlay))], [2]);
    // QEMU 7.2 closes an fd removed from an fdset only while the guest runs.
    t.diagnostic(`paused: QEMU's fds of the base: ${accessModes(pid, img).join(',')}`);
    await svirtOk(dir, [...S, 'resume', 'p']);
    const deadline = Date.now() + 5000;
    while (accessModes(pid, img).includes(2) && Date.now() < deadline) {
      await qmp(dir, 'p', 'query-status'); // a monitor session ending while running lets QEMU close it
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual([...new Set(accessModes(pid, img))], [0], 'running again, QEMU holds the base O_RDONLY only');
    await svirtOk(dir, [...S, 'destroy', 'p']);
    assert.deepEqual(owner(overlay), { uid: 0, gid: 0, mode: 0o600 });
  });

  it('refusals leave the guest on its old chain: no overlay, no label changed, no record', async (t) => {
    const dir = scratch(t);
    const img = await defineAndStart(dir, 'r');
    const uid = guestUid(dir, 'r');
    const before = { live: row(dir, 'r').live_xml, def: await svirtOk(dir, ['dumpxml', 'r', '--inactive']) };
    writeFileSync(join(dir, 'taken.qcow2'), 'x');
    const cases: [string[], RegExp][] = [
      [['--diskspec', `vda,file=${join(dir, 'taken.qcow2')}`], /exists already/],
      [['--diskspec', 'vda,file=/etc/svirt-snapshot-overlay'], /\/etc/],
      [['--diskspec', 'vda,file=relative.qcow2'], /not absolute/],
      [['--diskspec', `vda,file=${join(dir, 'no-such-dir', 'o.qcow2')}`], /no-such-dir|ENOENT/],
    ];
    for (const [extra, why] of cases) {
      const r = await svirt(dir, [...S, 'snapshot-create-as', 'r', 'bad', '--disk-only', ...extra]);
      assert.notEqual(r.code, 0, extra.join(' '));
      assert.match(r.stderr, why);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    }
    // A QEMU error after the overlay is made, labelled and handed over: its node name is taken.
    const q = await QmpClient.connect(join(dir, 'run', 'monitor', `${row(dir, 'r').uuid}.sock`));
    try {
      await q.execute('blockdev-add', { driver: 'null-co', 'node-name': 'vda-fmt1', size: 1048576 });
    } finally {
      q.close();
    }
    const qemuError = await svirt(dir, [...S, 'snapshot-create-as', 'r', 'bad', '--disk-only']);
    assert.notEqual(qemuError.code, 0);
    assert.match(qemuError.stderr, /vda-fmt1/, 'QEMU’s error is reported');
    assert.equal(existsSync(join(dir, 'base.bad')), false, 'the overlay is removed');
    assert.equal(readFileSync(join(dir, 'taken.qcow2'), 'utf8'), 'x', 'an existing file is left alone');
    assert.equal(existsSync('/etc/svirt-snapshot-overlay'), false);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith('.qcow2') || f.startsWith('base.')),
      ['base.qcow2', 'taken.qcow2'],
    );
    assert.equal(row(dir, 'r').live_xml, before.live, 'the live XML is unchanged');
    assert.equal(await svirtOk(dir, ['dumpxml', 'r', '--inactive']), before.def, 'and the definition');
    assert.equal(owner(img).uid, uid, 'the base is still the guest’s');
    assert.equal((await svirtOk(dir, ['snapshot-list', 'r', '--name'])).trim(), '');
    assert.doesNotMatch(await guestIo(dir, 'r', 'write -P 0xcc 0 4k'), /error|fail/i, 'the guest writes its disk');
    const nodes = await qmp<{ 'node-name': string }[]>(dir, 'r', 'query-named-block-nodes');
    assert.deepEqual(nodes.map((n) => n['node-name']).sort(), ['vda-file0', 'vda-fmt0']);
    const sets = await qmp<{ fds: unknown[] }[]>(dir, 'r', 'query-fdsets');
    assert.ok(
      sets.every((s) => s.fds.length === 1),
      'no fd left in QEMU',
    );
    await svirtOk(dir, [...S, 'destroy', 'r']);
    assert.deepEqual(owner(img), { ...ORIGINAL });
  });

  it('a crash at each step: before the switch undone, after it finished, by the next command', async (t) => {
    const results: string[] = [];
    for (const point of SNAPSHOT_CRASH_POINTS) {
      const dir = scratch(t, `svirt-snapcrash-${point.replace(':', '-')}-`);
      const img = await defineAndStart(dir, 'c');
      const uid = guestUid(dir, 'c');
      const overlay = join(dir, 'base.c1');
      const crashed = await svirt(dir, [...S, 'snapshot-create-as', 'c', 'c1', '--disk-only'], { SVIRT_TEST_CRASH_AT: point });
      const problems: string[] = [];
      if (crashed.code !== 128) problems.push(`no crash (exit ${crashed.code}: ${crashed.stderr.trim()})`);
      await svirtOk(dir, [...S, 'list', '--all']); // repairs
      const rec = row(dir, 'c');
      const pid = rec.pid ?? 0;
      const after = point === 'snapshot:switched' || point === 'snapshot:reopened';
      if (rec.live_xml.includes("<source file='" + overlay) !== after)
        problems.push(`live XML chain wrong (${after ? 'not ' : ''}switched)`);
      if (after) {
        if (!existsSync(overlay)) problems.push('the overlay is gone');
        else if (owner(overlay).uid !== uid) problems.push('the overlay is not the guest’s');
        if (owner(img).uid !== ORIGINAL.uid) problems.push('the base kept the guest’s owner');
        if (accessModes(pid, img).includes(2)) problems.push('QEMU still holds the base read-write');
        if (!(await svirtOk(dir, ['snapshot-list', 'c', '--name'])).includes('c1')) problems.push('no snapshot record');
        if (!(await svirtOk(dir, ['dumpxml', 'c', '--inactive'])).includes(overlay))
          problems.push('the definition lacks the overlay');
      } else {
        if (existsSync(overlay)) problems.push('an overlay was left');
        if (owner(img).uid !== uid) problems.push('the base lost the guest’s owner');
        if ((await svirtOk(dir, ['snapshot-list', 'c', '--name'])).trim() !== '') problems.push('a record was left');
        const nodes = await qmp<{ 'node-name': string }[]>(dir, 'c', 'query-named-block-nodes');
        if (nodes.length !== 2) problems.push(`QEMU has nodes ${nodes.map((n) => n['node-name']).join(',')}`);
      }
      if (/error|fail/i.test(await guestIo(dir, 'c', 'write -P 0xdd 0 4k'))) problems.push('the guest cannot write');
      await svirtOk(dir, [...S, 'destroy', 'c']);
      if (owner(img).uid !== ORIGINAL.uid || owner(img).mode !== ORIGINAL.mode) problems.push('the base not given back');
      if (existsSync(overlay) && owner(overlay).uid !== 0) problems.push('the overlay not given back');
      if (problems.length > 0) results.push(`${point}: ${problems.join('; ')}`);
    }
    assert.deepEqual(results, []);
  });
});
