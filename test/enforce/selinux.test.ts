/**
 * sVirt under a kernel that enforces SELinux with Debian's reference policy (the enforcement
 * lab's first VM). Checks what the kernel denies, not what svirt writes: process contexts,
 * image labels, MCS denials of a compromised monitor, and that every label comes back.
 *
 * The lab loads Debian's policy plus lab/selinux/*.cil (without them no guest can start:
 * see the 'stock policy' tests) and sets virt_use_execmem (TCG) and allow_execmem (node).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { QmpClient } from '../../src/qemu/qmp-client.js';
import { countRows, domainXml, procStatus, writeDomain } from '../helpers.js';
import {
  alive,
  avcDenials,
  eventually,
  filledWith,
  imageBytes,
  fileContext,
  guest,
  kernelLog,
  LabDirs,
  labImage,
  labSkip,
  openThroughMonitor,
  parseContext,
  procLabel,
  qemuIo,
  qemuProcesses,
  qmpConnect,
  run,
  svirtOk,
  svirtRun as svirt,
} from './lab.js';

const skip = labSkip('selinux');
const dirs = new LabDirs();
after(() => dirs.cleanup());
const FULL = ['--security-driver', 'selinux,dac,landlock'];
const ALONE = ['--security-driver', 'selinux'];
const DOMAIN_TYPES = ['svirt_t', 'svirt_tcg_t'];
const PAIR = /^s0:c(\d+),c(\d+)$/;

/** Loads one of the policies the lab built (lab/build-policy.sh), keeping the booleans. */
function loadPolicy(name: 'stock' | 'lab-nonnp' | 'lab'): void {
  const dir = process.env['SVIRT_LAB_POLICY_DIR'] ?? '/mnt/policy';
  // selinuxfs takes the whole policy in one write; the kernel keeps boolean values across loads
  writeFileSync('/sys/fs/selinux/load', readFileSync(join(dir, `${name}.33`)));
  const r = run('setsebool', ['virt_use_execmem=on', 'allow_execmem=on']);
  assert.equal(r.code, 0, `setsebool after loading ${name}: ${r.out}`);
}

interface Two {
  readonly dir: string;
  readonly a: string;
  readonly b: string;
  readonly original: { a: string; b: string };
}

/** Two raw images and two defined guests ga (disk a) and gb (disk b). */
async function defineTwo(dir: string, stack: readonly string[]): Promise<Two> {
  const a = labImage(join(dir, 'a.img'), 4);
  const b = labImage(join(dir, 'b.img'), 4);
  await svirtOk(dir, [...stack, 'define', writeDomain(dir, 'ga', domainXml('ga', [{ path: a, dev: 'vda' }]))]);
  await svirtOk(dir, [...stack, 'define', writeDomain(dir, 'gb', domainXml('gb', [{ path: b, dev: 'vda' }]))]);
  return { dir, a, b, original: { a: fileContext(a), b: fileContext(b) } };
}

describe('SELinux enforcing, Debian reference policy: svirt with selinux,dac,landlock', { skip }, () => {
  let g: Two;
  let q: QmpClient | undefined;
  before(async () => {
    loadPolicy('lab');
    g = await defineTwo(dirs.make('svirt-enforce-se-'), FULL);
  });
  after(() => q?.close());

  it('starts two guests whose QEMU runs as svirt_t with distinct category pairs', async () => {
    const started = await Promise.all([
      svirt(g.dir, [...FULL, 'start', 'ga', '--paused']),
      svirt(g.dir, [...FULL, 'start', 'gb', '--paused']),
    ]);
    for (const r of started) assert.equal(r.code, 0, `svirt start: ${r.stderr}`);
    const ga = guest(g.dir, 'ga');
    const gb = guest(g.dir, 'gb');
    const ca = parseContext(procLabel(ga.pid));
    const cb = parseContext(procLabel(gb.pid));
    for (const c of [ca, cb]) {
      assert.ok(DOMAIN_TYPES.includes(c.type), `QEMU runs as ${c.type}, not svirt_t`);
      assert.match(c.level, PAIR, `a category pair: ${c.level}`);
      const m = PAIR.exec(c.level);
      assert.notEqual(m?.[1], m?.[2], 'two different categories');
    }
    assert.notEqual(ca.level, cb.level, 'each guest has its own pair');
    // what an administrator sees
    const ps = run('ps', ['-e', '-o', 'label=,pid=']).out;
    assert.match(ps, new RegExp(`:svirt(_tcg)?_t:${ca.level}\\s+${ga.pid}\\b`), ps);
    const info = await svirtOk(g.dir, [...FULL, 'dominfo', 'ga']);
    assert.match(info, /^Security model: selinux$/m);
    assert.ok(info.includes(ca.level), `dominfo names the label: ${info}`);
    // the launcher asked for no_new_privs and the policy let the transition happen under it
    assert.equal(procStatus(ga.pid).get('NoNewPrivs'), '1');
  });

  it("labels each image svirt_image_t at its guest's pair, and the runtime dir too", () => {
    for (const [name, img] of [
      ['ga', g.a],
      ['gb', g.b],
    ] as const) {
      const { pid, uuid } = guest(g.dir, name);
      const level = parseContext(procLabel(pid)).level;
      const image = parseContext(fileContext(img));
      assert.equal(image.type, 'svirt_image_t', `${img}: ${fileContext(img)}`);
      assert.equal(image.level, level, `${img} is at ${name}'s pair`);
      const rt = parseContext(fileContext(join(g.dir, 'run', uuid)));
      assert.equal(rt.type, 'svirt_image_t');
      assert.equal(rt.level, level);
      // svirt binds the monitor socket in its own root-only dir and QEMU gets the fd: no
      // monitor socket is in the guest's runtime dir, where the guest could swap it.
      assert.equal(existsSync(join(g.dir, 'run', uuid, 'qmp.sock')), false);
      assert.equal(existsSync(join(g.dir, 'run', 'monitor', `${uuid}.sock`)), true);
    }
    const ls = run('ls', ['-Z', g.a]).out;
    assert.match(ls, /svirt_image_t:s0:c\d+,c\d+ /, ls);
  });

  it("denies guest A's monitor guest B's image and /etc/shadow, while A's own disk works", async () => {
    q = await qmpConnect(guest(g.dir, 'ga').qmp);
    for (const ro of [false, true]) {
      assert.match(await openThroughMonitor(q, g.b, `b${ro ? 'ro' : 'rw'}`, ro), /Permission denied/);
      assert.match(await openThroughMonitor(q, '/etc/shadow', `shadow${ro ? 'ro' : 'rw'}`, ro), /Permission denied/);
    }
    await qemuIo(q, 'vda', 'write -P 0x5a 0 4k');
    assert.ok(filledWith(imageBytes(g.a, 0, 4096), 0x5a), "A's write reached its image");
  });

  it("makes guest A's next disk write fail, with an AVC denial, once its image is relabelled to another pair", async () => {
    const ga = guest(g.dir, 'ga');
    const level = parseContext(procLabel(ga.pid)).level;
    q ??= await qmpConnect(ga.qmp);
    await qemuIo(q, 'vda', 'write -P 0x11 0 4k');
    assert.ok(filledWith(imageBytes(g.a, 0, 4096), 0x11), 'the write works before the relabel');
    // A category outside A's pair: a pair that holds c1 (about one run in 500) dominates s0:c1,
    // and the write would rightly go through (lab CI ci28b: guest A at s0:c1,c999).
    const mine = new Set([...level.matchAll(/c(\d+)/g)].map((m) => Number(m[1])));
    const other = `s0:c${[1, 2, 3].find((c) => !mine.has(c))}`;
    const mark = kernelLog.mark();
    const chcon = run('chcon', ['-l', other, g.a]);
    assert.equal(chcon.code, 0, chcon.out);
    await qemuIo(q, 'vda', 'write -P 0x22 0 4k');
    assert.ok(filledWith(imageBytes(g.a, 0, 4096), 0x11), 'the write after the relabel did not reach the image');
    const avc = await eventually(() =>
      avcDenials(
        mark,
        '{ write }',
        `scontext=system_u:system_r:${parseContext(procLabel(ga.pid)).type}:${level}`,
        `tcontext=system_u:object_r:svirt_image_t:${other} `,
        'tclass=file',
      ),
    );
    assert.ok(avc.length > 0, `an AVC denial for the write; kernel log since the relabel:\n${kernelLog.since(mark).join('\n')}`);
    assert.ok(alive(ga.pid), 'the guest itself keeps running');
  });

  it('gives every file its label back after stop (even an image relabelled meanwhile)', async () => {
    q?.close();
    q = undefined;
    const ga = guest(g.dir, 'ga');
    const gb = guest(g.dir, 'gb');
    await svirtOk(g.dir, [...FULL, 'destroy', 'ga']);
    await svirtOk(g.dir, [...FULL, 'destroy', 'gb']);
    assert.ok(!alive(ga.pid) && !alive(gb.pid), 'both QEMUs are gone');
    assert.equal(fileContext(g.a), g.original.a, 'image a has its original label');
    assert.equal(fileContext(g.b), g.original.b, 'image b has its original label');
    for (const img of [g.a, g.b]) {
      const stash = run('getfattr', ['--absolute-names', '-n', 'trusted.svirt.selinux', img]);
      assert.notEqual(stash.code, 0, `no remembered-label xattr left on ${img}: ${stash.out}`);
    }
    assert.equal(countRows(g.dir, 'reservations'), 0);
    assert.equal(countRows(g.dir, 'remembered'), 0);
  });
});

describe('SELinux enforcing: svirt with the selinux driver alone (QEMU as root, only SELinux in the way)', { skip }, () => {
  let g: Two;
  let q: QmpClient | undefined;
  before(async () => {
    loadPolicy('lab');
    g = await defineTwo(dirs.make('svirt-enforce-se1-'), ALONE);
    for (const n of ['ga', 'gb']) await svirtOk(g.dir, [...ALONE, 'start', n, '--paused']);
  });
  after(() => q?.close());

  it("denies guest A's monitor B's image and /etc/shadow by MCS and type enforcement (AVC denials)", async () => {
    const ga = guest(g.dir, 'ga');
    const gb = guest(g.dir, 'gb');
    assert.equal(procStatus(ga.pid).get('Uid')?.split(/\s+/)[0], '0', 'QEMU runs as root: DAC lets everything through');
    const levelB = parseContext(procLabel(gb.pid)).level;
    q = await qmpConnect(ga.qmp);
    const mark = kernelLog.mark();
    assert.match(await openThroughMonitor(q, g.b, 'steal', false), /Permission denied/);
    assert.match(await openThroughMonitor(q, '/etc/shadow', 'shadow', true), /Permission denied/);
    const avcB = await eventually(() => avcDenials(mark, `tcontext=system_u:object_r:svirt_image_t:${levelB} `, 'tclass=file'));
    assert.ok(avcB.length > 0, `an AVC denial for B's image:\n${kernelLog.since(mark).join('\n')}`);
    const avcShadow = await eventually(() => avcDenials(mark, ':shadow_t:', 'tclass=file'));
    assert.ok(avcShadow.length > 0, `an AVC denial for /etc/shadow:\n${kernelLog.since(mark).join('\n')}`);
    // The same AVCs, found by each guest's label through the CLI (issue 15).
    type Found = { role: string; lsm: string; label: string; object?: string; what: string };
    const byA = JSON.parse(await svirtOk(g.dir, [...ALONE, '--json', 'audit', '--kernel', '--guest', 'ga'])) as Found[];
    const levelA = parseContext(procLabel(ga.pid)).level;
    assert.ok(
      byA.some((d) => d.role === 'subject' && d.label === levelA && d.object?.includes(':shadow_t:') === true),
      `svirt audit --kernel --guest ga finds A's /etc/shadow denial: ${JSON.stringify(byA)}`,
    );
    const onB = JSON.parse(await svirtOk(g.dir, [...ALONE, '--json', 'audit', '--kernel', '--guest', 'gb'])) as Found[];
    assert.ok(
      onB.some((d) => d.role === 'object' && d.label === levelB && d.lsm === 'selinux'),
      `svirt audit --kernel --guest gb finds what A was denied on B's image: ${JSON.stringify(onB)}`,
    );
    await qemuIo(q, 'vda', 'write -P 0x33 0 4k');
    assert.ok(filledWith(imageBytes(g.a, 0, 4096), 0x33), "A's own disk works");
    q.close();
    q = undefined;
  });

  it("labels a hotplugged disk with guest A's pair while attached, and gives its label back on detach", async () => {
    const ga = guest(g.dir, 'ga');
    const levelA = parseContext(procLabel(ga.pid)).level;
    const extra = labImage(join(g.dir, 'extra.img'), 4);
    const original = fileContext(extra);
    const r = await svirt(g.dir, [...ALONE, 'attach-disk', 'ga', extra, 'sdb', '--live']);
    assert.equal(r.code, 0, `svirt attach-disk: ${r.stderr}`);
    assert.equal(fileContext(extra), `system_u:object_r:svirt_image_t:${levelA}`);
    const qa = await qmpConnect(ga.qmp);
    try {
      await qemuIo(qa, 'sdb', 'write -P 0x55 0 4k');
    } finally {
      qa.close();
    }
    assert.ok(filledWith(imageBytes(extra, 0, 4096), 0x55), 'a write on the hotplugged disk reached its image');
    const d = await svirt(g.dir, [...ALONE, 'detach-disk', 'ga', 'sdb', '--live']);
    assert.equal(d.code, 0, `svirt detach-disk: ${d.stderr}`);
    assert.equal(fileContext(extra), original, 'the detached image has its label back');
  });

  it("gives the labels back when QEMU is killed behind svirt's back (the per-guest monitor reaps it)", async () => {
    const gb = guest(g.dir, 'gb');
    process.kill(gb.pid, 'SIGKILL');
    const deadline = Date.now() + 15_000;
    while (fileContext(g.b) !== g.original.b && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    assert.equal(fileContext(g.b), g.original.b, "the monitor restored B's image label without any svirt command");
    await svirtOk(g.dir, [...ALONE, 'destroy', 'ga']);
    assert.equal(fileContext(g.a), g.original.a);
    assert.equal(countRows(g.dir, 'running'), 0);
    assert.equal(countRows(g.dir, 'reservations'), 0);
  });
});

describe('SELinux enforcing: policies without svirt rules fail closed', { skip }, () => {
  let dir: string;
  let img: string;
  let original: string;
  before(async () => {
    dir = dirs.make('svirt-enforce-se2-');
    img = labImage(join(dir, 'c.img'), 4);
    original = fileContext(img);
    await svirtOk(dir, [...FULL, 'define', writeDomain(dir, 'gc', domainXml('gc', [{ path: img, dev: 'vda' }]))]);
  });
  after(() => loadPolicy('lab'));

  /** Starts gc under `policy` and returns the CLI result and the AVC denials it caused. */
  async function startUnder(
    policy: 'stock' | 'lab-nonnp',
  ): Promise<{ code: number; stderr: string; avc: string[]; label: string; nnp: string }> {
    loadPolicy(policy);
    const mark = kernelLog.mark();
    const before = new Set(qemuProcesses().map((p) => p.pid));
    const r = await svirt(dir, [...FULL, 'start', 'gc', '--paused']);
    const avc = await eventually(() => avcDenials(mark, 'tcontext=system_u:system_r:svirt_t:'), 1500);
    let label = '';
    let nnp = '';
    if (r.code === 0) {
      const { pid } = guest(dir, 'gc');
      label = procLabel(pid);
      nnp = procStatus(pid).get('NoNewPrivs') ?? '';
      await svirt(dir, [...FULL, 'destroy', 'gc']);
    }
    loadPolicy('lab');
    const leftover = qemuProcesses().filter((p) => !before.has(p.pid));
    assert.deepEqual(leftover, [], 'no QEMU is left running');
    assert.equal(fileContext(img), original, 'the image has its label back');
    assert.equal(countRows(dir, 'reservations'), 0, 'no label stays reserved');
    assert.equal(countRows(dir, 'running'), 0);
    return { code: r.code, stderr: r.stderr, avc, label, nnp };
  }

  it("Debian's stock policy: no guest starts (the policy lets only virtd_t enter svirt_t), and the error names the step", async (t) => {
    const r = await startUnder('stock');
    t.diagnostic(`stderr: ${r.stderr.trim()}`);
    t.diagnostic(`AVC: ${r.avc.join(' | ')}`);
    assert.notEqual(r.code, 0, 'start must fail: the transition to svirt_t is not allowed');
    assert.match(r.stderr, /^error: .*(exec|selinux).*(Operation not permitted|Permission denied)/m);
    assert.ok(r.avc.length > 0, 'the kernel logged why');
  });

  it('no_new_privs: with the transition allowed but not nnp_transition, the guest fails closed or runs without NNP', async (t) => {
    const r = await startUnder('lab-nonnp');
    t.diagnostic(`exit ${r.code}; stderr: ${r.stderr.trim()}`);
    t.diagnostic(`AVC: ${r.avc.join(' | ')}`);
    if (r.code !== 0) {
      // svirt-exec set PR_SET_NO_NEW_PRIVS: the kernel refuses the exec transition (EPERM)
      assert.match(r.stderr, /Operation not permitted/);
      assert.ok(
        r.avc.some((l) => l.includes('{ nnp_transition }') && l.includes('tclass=process2')),
        'an nnp_transition denial',
      );
    } else {
      // a launcher that leaves NNP off under SELinux needs only `process transition`
      t.diagnostic(`started as ${r.label}, NoNewPrivs ${r.nnp}`);
      assert.ok(DOMAIN_TYPES.includes(parseContext(r.label).type), `QEMU runs as ${r.label}`);
      assert.equal(r.nnp, '0', 'it can only have started without no_new_privs');
    }
  });
});
