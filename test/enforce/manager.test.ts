/**
 * svirt's own confinement (issue 18 part 1; docs/confinement.md), in both lab VMs: the
 * manager, entered through svirt's launcher, runs in its own SELinux domain (virtd_t) or
 * AppArmor profile (svirt-manager, enforce), and so does the per-guest monitor it forks;
 * node run any other way is not confined; and a hostile request the manager would carry out
 * (a disk naming /etc/shadow) is stopped by the manager's confinement alone, with a denial
 * in the kernel log naming it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { domainXml, procStatus, readRunning, SVIRT_BIN, writeDomain } from '../helpers.js';
import {
  apparmorDenials,
  avcDenials,
  eventually,
  fileContext,
  guest,
  kernelLog,
  LabDirs,
  labImage,
  labSkip,
  parseContext,
  procLabel,
  run,
  svirtOk,
  svirtRun,
  type LabMode,
  guestAppArmorLabel,
} from './lab.js';

const mode: LabMode = process.env['SVIRT_LAB'] === 'apparmor' ? 'apparmor' : 'selinux';
const skip = labSkip(mode);
const STACK = ['--security-driver', `${mode},dac,landlock`];
/**
 * The hostile request's stack. The apparmor driver refuses disks in host trees such as /etc
 * by itself (apparmor-rules.ts), another userspace check like the entrypoint one; the dac
 * driver would chown the file. Without the LSM driver only the manager's own confinement
 * is left in the way, in both VMs.
 */
const HOSTILE_STACK = ['--security-driver', 'dac,landlock'];
const MANAGER_TYPE = 'virtd_t';
const MANAGER_PROFILE = 'svirt-manager';
const dirs = new LabDirs();
after(() => dirs.cleanup());

interface Manager {
  pid: number;
  selinux?: { context: string; enforcing: boolean; managerDomain: boolean };
  apparmor?: { profile: string; mode: string; managerProfile: boolean };
  noNewPrivs: boolean;
  entry: string | null;
  confined: boolean;
}

/** The manager's view of its own confinement (`svirt profile --json`). */
async function selfReport(dir: string, which: 'install' | 'test-build' = 'install'): Promise<Manager> {
  const r = await svirtRun(dir, ['--json', 'profile'], which);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { manager: Manager }).manager;
}

/** The label the kernel gives a process, as the tests expect it for the manager. */
function assertManagerLabel(pid: number, what: string): void {
  const label = procLabel(pid, mode);
  if (mode === 'selinux') assert.equal(parseContext(label).type, MANAGER_TYPE, `${what} runs as ${label}`);
  else assert.equal(label, `${MANAGER_PROFILE} (enforce)`, `${what} runs under ${label}`);
}

describe(`the manager confined by ${mode} (enforcing)`, { skip }, () => {
  let dir: string;
  before(() => {
    dir = dirs.make('svirt-enforce-mgr-');
  });

  it("runs in its own domain/profile when entered through svirt's launcher, and says so", async (t) => {
    assert.ok(process.env['SVIRT_LAB_ENTRY'], 'the lab runs svirt through its launcher (SVIRT_LAB_ENTRY)');
    const m = await selfReport(dir);
    t.diagnostic(JSON.stringify(m));
    assert.equal(m.entry, process.env['SVIRT_LAB_ENTRY']);
    if (mode === 'selinux') {
      assert.ok(m.selinux, 'the manager sees SELinux');
      assert.equal(parseContext(m.selinux.context).type, MANAGER_TYPE);
      assert.equal(m.selinux.enforcing, true);
      assert.equal(m.selinux.managerDomain, true);
    } else {
      assert.ok(m.apparmor, 'the manager sees AppArmor');
      assert.deepEqual([m.apparmor.profile, m.apparmor.mode, m.apparmor.managerProfile], [MANAGER_PROFILE, 'enforce', true]);
      // the kernel's list: the manager's profile is loaded in enforce mode
      const r = run('aa-status', ['--json']);
      const profiles = (JSON.parse(r.out) as { profiles?: Record<string, string> }).profiles ?? {};
      assert.equal(profiles[MANAGER_PROFILE], 'enforce', 'aa-status lists svirt-manager in enforce mode');
    }
    assert.equal(m.confined, true);
    // the launcher's own node: the same binary, run directly, is not confined
    const plain = run(process.execPath, [SVIRT_BIN, '--state-dir', dir, '--json', 'profile']);
    const p = (JSON.parse(plain.out) as { manager: Manager }).manager;
    assert.equal(p.confined, false, `node bin/svirt.js is not confined: ${plain.out}`);
    if (mode === 'selinux') assert.notEqual(parseContext(p.selinux?.context ?? '').type, MANAGER_TYPE);
    else assert.notEqual(p.apparmor?.profile, MANAGER_PROFILE);
  });

  it('starts a guest: the monitor stays in the manager domain/profile, QEMU leaves it for its own', async () => {
    const img = labImage(join(dir, 'm.img'), 4);
    await svirtOk(dir, [...STACK, 'define', writeDomain(dir, 'gm', domainXml('gm', [{ path: img, dev: 'vda' }]))]);
    await svirtOk(dir, [...STACK, 'start', 'gm', '--paused']);
    try {
      const g = guest(dir, 'gm');
      const mpid = readRunning(dir).find((r) => r.name === 'gm')?.monitorPid ?? 0;
      assert.ok(mpid > 1, `the guest's monitor pid: ${mpid}`);
      assertManagerLabel(mpid, 'the monitor');
      // ps -Z agrees with /proc
      if (mode === 'selinux') {
        const ps = run('ps', ['-o', 'label=', '-p', String(mpid)]).out.trim();
        assert.equal(parseContext(ps).type, MANAGER_TYPE, `ps -Z: ${ps}`);
      }
      const qemu = procLabel(g.pid, mode);
      if (mode === 'selinux') assert.ok(['svirt_t', 'svirt_tcg_t'].includes(parseContext(qemu).type), qemu);
      else assert.equal(qemu, guestAppArmorLabel(`svirt-${g.uuid}`), "QEMU: the guest profile stacked on the manager's");
      assert.equal(procStatus(g.pid).get('NoNewPrivs'), '1');
    } finally {
      await svirtOk(dir, [...STACK, 'destroy', 'gm']);
    }
  });

  it("a definition naming /etc/shadow as a disk is stopped by the manager's own confinement, and logged", async (t) => {
    // the test build (lab/test-build.mjs) has the image-entrypoint check taken out, so only the
    // manager's domain/profile stands between the request and /etc/shadow
    assert.ok(process.env['SVIRT_LAB_TEST_ENTRY'], 'the lab made the test build (SVIRT_LAB_TEST_ENTRY)');
    const m = await selfReport(dir, 'test-build');
    assert.equal(m.confined, true, `the test build runs confined too: ${JSON.stringify(m)}`);
    const shadow = '/etc/shadow';
    const before = statSync(shadow);
    const label = fileContext(shadow);
    const mark = kernelLog.mark();
    const xml = writeDomain(dir, 'hostile', domainXml('hostile', [{ path: shadow, dev: 'vda' }]));
    const def = await svirtRun(dir, [...HOSTILE_STACK, 'define', xml], 'test-build');
    const start = def.code === 0 ? await svirtRun(dir, [...HOSTILE_STACK, 'start', 'hostile', '--paused'], 'test-build') : def;
    t.diagnostic(`define: ${def.code} ${def.stderr.trim()}`);
    t.diagnostic(`start: ${start.code} ${start.stderr.trim()}`);
    if (start.code === 0) await svirtRun(dir, [...HOSTILE_STACK, 'destroy', 'hostile'], 'test-build');
    assert.notEqual(start.code, 0, 'the hostile guest must not start');
    assert.doesNotMatch(
      start.stderr,
      /entrypoint|refusing disk/i,
      "refused by the manager's confinement, not by a check of svirt's",
    );
    assert.match(start.stderr, /EACCES|Permission denied/, 'the kernel refused the manager');
    const after = statSync(shadow);
    assert.deepEqual(
      [after.uid, after.gid, after.mode, after.ino],
      [before.uid, before.gid, before.mode, before.ino],
      '/etc/shadow keeps its owner and mode',
    );
    assert.equal(fileContext(shadow), label, '/etc/shadow keeps its label');
    const denials =
      mode === 'selinux'
        ? // name="shadow" for an open, path="/etc/shadow" for a stat (the manager resolves the path first)
          await eventually(() =>
            avcDenials(mark, `:${MANAGER_TYPE}:`, 'tcontext=system_u:object_r:shadow_t').filter((l) =>
              /(name="shadow"|path="\/etc\/shadow")/.test(l),
            ),
          )
        : await eventually(() => apparmorDenials(mark, `profile="${MANAGER_PROFILE}"`, `name="${shadow}"`));
    t.diagnostic(`denials: ${denials.join(' | ')}`);
    assert.ok(denials.length > 0, `a denial of /etc/shadow naming the manager:\n${kernelLog.since(mark).join('\n')}`);
  });
});
