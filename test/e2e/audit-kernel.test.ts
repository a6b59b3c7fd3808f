/**
 * `svirt audit --kernel`: the kernel's denials found by a guest's label (issue 15, part 4).
 * Two real guests start under selinux,dac,landlock (SELinux in its userspace test mode, so
 * their MCS pairs are real reservations and real `label` events in the trail). This host's
 * kernel runs no SELinux, so it logs no AVC: the records are written to an audit.log in
 * auditd's format, with the guests' real levels, and `--audit-log` points there. The real
 * /dev/kmsg is read as well (it holds none of these pairs). The enforcement lab checks the
 * same command against the kernel's own AVCs (test/enforce/selinux.test.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { domainXml, makeImage, qemuAsRootSkip, readRunning, scratch, svirt, svirtOk, writeDomain } from '../helpers.js';

const skip =
  qemuAsRootSkip('the dac driver needs root') || (existsSync('/etc/selinux/config') ? false : 'no SELinux policy installed');
const S = ['--security-driver', 'selinux,dac,landlock'];
const ENV = { SVIRT_SELINUX_MODE: 'userspace-test' };

interface Row {
  guest: string;
  role: string;
  lsm: string;
  label: string;
  name?: string;
  what: string;
  enforced: boolean;
}

function level(dir: string, name: string): string {
  const row = readRunning(dir).find((r) => r.name === name);
  const l = /model='selinux'[\s\S]*?<label>[^<]*:(s0:c\d+,c\d+)<\/label>/.exec(row?.live_xml ?? '')?.[1];
  assert.ok(l, `${name} runs with an MCS level`);
  return l;
}

function avc(sec: number, serial: number, perm: string, s: string, t: string, name: string, permissive = 0): string {
  return (
    `type=AVC msg=audit(${sec}.123:${serial}): avc:  denied  { ${perm} } for  pid=4242 comm="qemu-system-x86" ` +
    `name="${name}" dev="vda1" ino=77 scontext=system_u:system_r:svirt_t:${s} tcontext=${t} tclass=file permissive=${permissive}`
  );
}

describe('svirt audit --kernel: denials by guest label', { skip }, () => {
  it('attributes AVC records to the guest whose MCS pair they carry, as subject or object, and to no one else', async (t) => {
    const dir = scratch(t);
    for (const n of ['ka', 'kb']) {
      const img = makeImage(join(dir, `${n}.img`), 4);
      await svirtOk(dir, [...S, 'define', writeDomain(dir, n, domainXml(n, [{ path: img, dev: 'vda' }]))], ENV);
      await svirtOk(dir, [...S, 'start', n, '--paused'], ENV);
    }
    const la = level(dir, 'ka');
    const lb = level(dir, 'kb');
    const now = Math.floor(Date.now() / 1000);
    const log = join(dir, 'audit.log');
    writeFileSync(
      log,
      [
        'type=SYSCALL msg=audit(1.000:1): arch=c000003e syscall=257 success=no exit=-13',
        avc(now, 101, 'read', la, 'system_u:object_r:shadow_t:s0', 'shadow'),
        avc(now, 102, 'read write', la, `system_u:object_r:svirt_image_t:${lb}`, 'kb.img'),
        avc(now, 103, 'read', 's0', 'system_u:object_r:shadow_t:s0', 'unrelated'),
        avc(now, 104, 'getattr', la, 'system_u:object_r:etc_t:s0', 'hosts', 1),
        '',
      ].join('\n'),
    );
    const rows = async (...extra: string[]): Promise<Row[]> =>
      JSON.parse(await svirtOk(dir, [...S, '--json', 'audit', '--kernel', '--audit-log', log, ...extra], ENV)) as Row[];

    const a = await rows('--guest', 'ka');
    assert.deepEqual(
      a.map((r) => [r.role, r.name, r.what, r.enforced]),
      [
        ['subject', 'shadow', '{ read } file', true],
        ['subject', 'kb.img', '{ read write } file', true],
        ['subject', 'hosts', '{ getattr } file', false],
      ],
    );
    assert.ok(a.every((r) => r.guest === 'ka' && r.lsm === 'selinux' && r.label === la));
    const b = await rows('--guest', 'kb');
    assert.deepEqual(
      b.map((r) => [r.role, r.name, r.label]),
      [['object', 'kb.img', lb]],
      "B's image was what A was denied",
    );
    const all = await rows();
    assert.equal(all.length, 4, 'the record at plain s0 names no guest');
    assert.deepEqual(await rows('--guest', 'ka', '--since', String((now + 60) * 1000)), [], '--since applies to the records');

    const text = await svirtOk(dir, [...S, 'audit', '--kernel', '--guest', 'kb', '--audit-log', log], ENV);
    assert.match(
      text,
      new RegExp(`selinux denied against the guest guest=kb label=${lb}: \\{ read write \\} file name="kb.img"`),
    );

    // The trail keeps the label event: a guest's denials stay found after it stopped.
    await svirtOk(dir, [...S, 'destroy', 'ka'], ENV);
    const c = await rows('--guest', 'ka');
    assert.equal(c.length, 3, "ka's denials are still found after it stopped");
  });

  it('reads the kernel log even when the audit log is missing, a FIFO or a link, and says so', async (t) => {
    const dir = scratch(t);
    mkdirSync(join(dir, 'x'));
    const fifo = join(dir, 'x', 'fifo');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const link = join(dir, 'x', 'link');
    symlinkSync('/etc/shadow', link);
    for (const [path, why] of [
      [join(dir, 'x', 'none'), 'ENOENT'],
      [fifo, 'not a regular file'],
      [link, 'ELOOP'],
    ] as const) {
      const r = await svirt(dir, ['audit', '--kernel', '--audit-log', path]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stderr.includes(`note: ${path} not read (${why}); showing what /dev/kmsg holds`), r.stderr);
    }
  });
});
