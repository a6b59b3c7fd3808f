/**
 * Snapshots with real QEMU and qemu-img under dac,landlock (docs/snapshots.md): internal ones of
 * a shut-off guest (qemu-img on an fd) and of a running one (snapshot-save/-load/-delete jobs,
 * RAM included), revert restoring the disk's bytes; external disk-only ones (a new overlay,
 * the old image a read-only backing layer at the next start); and the refusals, each leaving
 * no file, no record and the definition as it was.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { domainXml, qemuAsRootSkip, readRunning, scratch, svirt, svirtOk, writeDomain } from '../helpers.js';
import { fdFlags } from '../support/fd-flags.js';

const S = ['--security-driver', 'dac,landlock'];

function qcow2(path: string): string {
  const r = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', path, '16M'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return path;
}

/** qemu-io on a shut-off image: write or check a pattern at offset 0. */
function io(path: string, cmd: string): boolean {
  const out = spawnSync('qemu-io', ['-f', 'qcow2', '-c', cmd, path], { encoding: 'utf8' }).stdout;
  return out.includes('bytes') && !out.includes('Pattern verification failed');
}

function tags(path: string): string {
  return spawnSync('qemu-img', ['snapshot', '-U', '-l', path], { encoding: 'utf8' }).stdout;
}

describe('snapshots (real QEMU and qemu-img, dac,landlock)', { skip: qemuAsRootSkip('the dac driver needs root') }, () => {
  it('internal: shut off and live, revert restores the bytes, delete removes the tag', async (t) => {
    const dir = scratch(t);
    const img = qcow2(join(dir, 'd.qcow2'));
    await svirtOk(dir, ['define', writeDomain(dir, 'g', domainXml('g', [{ path: img, dev: 'vda', format: 'qcow2' }]))]);
    assert.ok(io(img, 'write -P 0xaa 0 4k'));
    assert.match(await svirtOk(dir, ['snapshot-create-as', 'g', 's1', '--description', 'before']), /Domain snapshot s1 created/);
    assert.ok(io(img, 'write -P 0xbb 0 4k'));
    await svirtOk(dir, ['snapshot-create-as', 'g', 's2']);
    assert.match(tags(img), /\bs1\b[\s\S]*\bs2\b/);
    const info = await svirtOk(dir, ['snapshot-info', 'g', 's2']);
    assert.match(info, /^Current:\s+yes$/m);
    assert.match(info, /^Parent:\s+s1$/m);
    assert.match(info, /^Location:\s+internal$/m);
    await svirtOk(dir, ['snapshot-revert', 'g', 's1']);
    assert.ok(io(img, 'read -P 0xaa 0 4k'), 'the disk holds what it held at s1');
    assert.equal((await svirtOk(dir, ['snapshot-current', 'g', '--name'])).trim(), 's1');
    assert.match(
      await svirtOk(dir, ['snapshot-dumpxml', 'g', 's1']),
      /<description>before<\/description>[\s\S]*<state>shutoff<\/state>/,
    );
    await svirtOk(dir, ['snapshot-delete', 'g', 's1']);
    assert.doesNotMatch(tags(img), /\bs1\b/);
    assert.match(await svirtOk(dir, ['snapshot-info', 'g', 's2']), /^Parent:\s+-$/m, 'its child moved up');

    // Live: RAM and disks through QEMU's snapshot-save job.
    await svirtOk(dir, [...S, 'start', 'g']);
    await svirtOk(dir, [...S, 'snapshot-create-as', 'g', 'live']);
    assert.match(tags(img), /\blive\s+\d+(\.\d+)? [KMG]i?B/, 'the tag holds the VM state');
    assert.match(await svirtOk(dir, ['snapshot-list', 'g']), /live\s+.*\brunning$/m);
    const shutoffOne = await svirt(dir, [...S, 'snapshot-revert', 'g', 's2']);
    assert.notEqual(shutoffOne.code, 0);
    assert.match(shutoffOne.stderr, /taken with the guest shut off: shut domain 'g' off/);
    await svirtOk(dir, [...S, 'snapshot-revert', 'g', 'live']);
    assert.match(await svirtOk(dir, ['domstate', 'g']), /running/);
    await svirtOk(dir, [...S, 'snapshot-delete', 'g', 'live']);
    assert.doesNotMatch(tags(img), /\blive\b/);
    await svirtOk(dir, [...S, 'destroy', 'g']);
  });

  it('external disk-only: a new overlay, the old image read-only under it at the next start', async (t) => {
    const dir = scratch(t);
    const img = qcow2(join(dir, 'base.qcow2'));
    await svirtOk(dir, ['define', writeDomain(dir, 'x', domainXml('x', [{ path: img, dev: 'vda', format: 'qcow2' }]))]);
    await svirtOk(dir, ['snapshot-create-as', 'x', 'e1', '--disk-only']);
    const overlay = join(dir, 'base.e1');
    const st = statSync(overlay);
    assert.equal(st.uid, 0);
    assert.equal(st.mode & 0o777, 0o600, 'made root 0600, labelled only while a guest runs');
    const xml = await svirtOk(dir, ['dumpxml', 'x']);
    assert.match(
      xml,
      new RegExp(
        `<source file='${overlay}'/>\\s*<backingStore type='file'>\\s*<format type='qcow2'/>\\s*<source file='${img}'/>`,
      ),
    );
    assert.match(await svirtOk(dir, ['snapshot-list', 'x']), /e1\s+.*disk-snapshot$/m);

    await svirtOk(dir, [...S, 'start', 'x']);
    const pid = readRunning(dir)[0]?.pid ?? 0;
    assert.notEqual(statSync(overlay).uid, 0, "the overlay is the guest's");
    const baseFlags = fdFlags(pid, img);
    assert.ok(baseFlags.length > 0, 'QEMU holds the base image');
    for (const f of baseFlags) assert.equal(f & 3, 0, 'QEMU holds the base image read-only');
    for (const f of fdFlags(pid, overlay)) assert.equal(f & 3, 2, 'and the overlay read-write');
    await svirtOk(dir, [...S, 'destroy', 'x']);
    assert.equal(statSync(overlay).uid, 0, 'given back at stop');

    const revert = await svirt(dir, ['snapshot-revert', 'x', 'e1']);
    assert.notEqual(revert.code, 0);
    assert.match(revert.stderr, /reverting to external snapshot 'e1' is not supported \(libvirt 9 refuses it too\)/);
    assert.match((await svirt(dir, ['snapshot-delete', 'x', 'e1'])).stderr, /use --metadata/);
    await svirtOk(dir, ['snapshot-delete', 'x', 'e1', '--metadata']);
    assert.ok(existsSync(overlay), 'the guest keeps using its overlay');
  });

  it('undefine of a guest with snapshots: refused, unless --snapshots-metadata, which removes the rows', async (t) => {
    const dir = scratch(t);
    const img = qcow2(join(dir, 'u.qcow2'));
    await svirtOk(dir, ['define', writeDomain(dir, 'u', domainXml('u', [{ path: img, dev: 'vda', format: 'qcow2' }]))]);
    await svirtOk(dir, ['snapshot-create-as', 'u', 'k1']);
    await svirtOk(dir, ['snapshot-create-as', 'u', 'k2']);
    const before = await svirtOk(dir, ['dumpxml', 'u']);
    const refused = await svirt(dir, ['undefine', 'u']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /cannot undefine domain 'u' with 2 snapshots \(--snapshots-metadata removes their metadata\)/);
    assert.equal(refused.stderr.trim().split('\n').length, 1, 'one line');
    assert.equal(await svirtOk(dir, ['dumpxml', 'u']), before, 'the definition stays');
    assert.equal((await svirtOk(dir, ['snapshot-list', 'u', '--name'])).trim(), 'k1\nk2');
    await svirtOk(dir, ['undefine', 'u', '--snapshots-metadata']);
    assert.match(tags(img), /\bk1\b/, 'the image keeps its tags: only the metadata goes');
    // The same guest (same uuid) defined again has no snapshot left, and undefines plainly.
    const uuid = /<uuid>([0-9a-f-]+)<\/uuid>/.exec(before)?.[1] ?? '';
    assert.notEqual(uuid, '');
    const again = domainXml('u', [{ path: img, dev: 'vda', format: 'qcow2' }]).replace(
      '<name>u</name>',
      `<name>u</name><uuid>${uuid}</uuid>`,
    );
    await svirtOk(dir, ['define', writeDomain(dir, 'u2', again)]);
    assert.match(await svirtOk(dir, ['dumpxml', 'u']), new RegExp(`<uuid>${uuid}</uuid>`));
    assert.equal((await svirtOk(dir, ['snapshot-list', 'u', '--name'])).trim(), '');
    await svirtOk(dir, ['undefine', 'u']);
  });

  it('refusals leave no overlay, no record and the definition as it was', async (t) => {
    const dir = scratch(t);
    const img = qcow2(join(dir, 'd.qcow2'));
    const raw = join(dir, 'r.img');
    spawnSync('truncate', ['-s', '4M', raw]);
    await svirtOk(dir, [
      'define',
      writeDomain(
        dir,
        'f',
        domainXml('f', [
          { path: img, dev: 'vda', format: 'qcow2' },
          { path: raw, dev: 'vdb' },
        ]),
      ),
    ]);
    const before = await svirtOk(dir, ['dumpxml', 'f']);
    const cases: [string[], RegExp][] = [
      [['snapshot-create-as', 'f', 'i1'], /internal snapshot for disk vdb unsupported for storage type raw/],
      [['snapshot-create-as', 'f', 'bad/name'], /is not allowed|snapshot name|use 1-64 letters/],
      [
        ['snapshot-create-as', 'f', 'e1', '--disk-only', '--diskspec', 'vdb,snapshot=external,file=/etc/evil.qcow2'],
        /refusing disk "\/etc\/evil.qcow2": it is inside "\/etc"/,
      ],
      [['snapshot-create-as', 'f', 'e2', '--disk-only', '--diskspec', `vdb,snapshot=external,file=${img}`], /exists already/],
      [['snapshot-create-as', 'f', 'e3', '--disk-only', '--diskspec', 'vdz,snapshot=external'], /has no disk 'vdz'/],
      [['snapshot-revert', 'f', 'nope'], /no domain snapshot with matching name 'nope'/],
    ];
    for (const [argv, re] of cases) {
      const r = await svirt(dir, argv);
      assert.notEqual(r.code, 0, argv.join(' '));
      assert.match(r.stderr, re, argv.join(' '));
    }
    // The refused external snapshot made vda's overlay before vdb's failed: it is gone again.
    assert.deepEqual(
      readdirSync(dir).filter((f) => /^d\.e\d$|^r\.e\d$/.test(f)),
      [],
    );
    assert.equal(existsSync('/etc/evil.qcow2'), false);
    assert.equal(await svirtOk(dir, ['dumpxml', 'f']), before);
    assert.equal((await svirtOk(dir, ['snapshot-list', 'f', '--name'])).trim(), '');
    assert.doesNotMatch(tags(img), /\bi1\b/);
  });
});
