import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { lgetxattr } from '../../src/host/native.js';
import { CRASH_POINTS, type CrashPoint } from '../../src/lifecycle/crash-points.js';
import {
  claimsOfGuest,
  countRows,
  domainXml,
  makeImage,
  owner,
  readRunning,
  scratch,
  svirt,
  svirtOk,
  writeDomain,
  qemuAsRootSkip,
  processesByCmdline,
} from '../helpers.js';

const skip = qemuAsRootSkip();
const STACK = ['--security-driver', 'selinux,dac,landlock'];
const ENV = { SVIRT_SELINUX_MODE: 'userspace-test' };
const ORIGINAL = { uid: 1000, gid: 1000, mode: 0o644 };

/** How to reach each crash point: the commands before it and the one that crashes. */
function scenario(point: CrashPoint, dir: string): { setup: string[][]; crash: string[] } {
  const extra = join(dir, 'extra.img');
  const iso = join(dir, 'media.iso');
  const save = join(dir, 'g.save');
  const start = ['start', 'g', '--paused'];
  switch (point.split(':')[0] ?? '') {
    case 'start':
      return { setup: [], crash: start };
    case 'destroy':
    case 'cleanup':
      return { setup: [start], crash: ['destroy', 'g'] };
    case 'shutdown':
      return { setup: [start], crash: ['shutdown', 'g', '--mode', 'signal', '--timeout', '10'] };
    case 'attach':
      return { setup: [start], crash: ['attach-disk', 'g', extra, 'sdb'] };
    case 'detach':
      return { setup: [start, ['attach-disk', 'g', extra, 'sdb']], crash: ['detach-disk', 'g', 'sdb'] };
    case 'media':
      return point === 'media:eject-journaled'
        ? { setup: [start, ['change-media', 'g', 'hdc', iso, '--insert']], crash: ['change-media', 'g', 'hdc', '--eject'] }
        : { setup: [start], crash: ['change-media', 'g', 'hdc', iso, '--insert'] };
    case 'save':
      return { setup: [start], crash: ['save', 'g', save] };
    case 'restore':
      return { setup: [start, ['save', 'g', save]], crash: ['restore', save] };
  }
  throw new Error(`no scenario for ${point}`);
}

/** Live (not zombie) processes whose command line starts with `program` and names this uuid. */
const pidsOf = (program: string, uuid: string): number[] =>
  processesByCmdline((cmd) => cmd.startsWith(program) && cmd.includes(uuid));

const qemuPids = (uuid: string): number[] => pidsOf('/usr/bin/qemu-system', uuid);
/** The guest's swtpm (its state dir is named by the uuid). */
const swtpmPids = (uuid: string): number[] => pidsOf('/usr/bin/swtpm\0', uuid);

function selinux(path: string): string | undefined {
  return lgetxattr(path, 'security.selinux')?.toString().replace(/\0$/, '');
}

/** The invariants after any crash and the next command's repair. Returns the violations. */
function violations(dir: string, files: readonly string[], uuid: string): string[] {
  const out: string[] = [];
  const running = readRunning(dir);
  const rec = running.find((r) => r.uuid === uuid);
  const pids = qemuPids(uuid);
  if (countRows(dir, 'domains') !== 1) out.push('the definition was lost');
  if (rec) {
    if (rec.state !== 'running') out.push(`record left in state ${rec.state}`);
    if (pids.length !== 1) out.push(`running record but ${pids.length} QEMU processes`);
    if (swtpmPids(uuid).length !== 1) out.push(`running record but ${swtpmPids(uuid).length} swtpm processes`);
    const uid = Number(/model='dac'[^>]*>\s*<label>\+(\d+):/.exec(rec.live_xml)?.[1]);
    if (owner(files[0] as string).uid !== uid) out.push('a running guest lost the owner of its disk');
    const attached = rec.live_xml.includes('extra.img');
    const extra = files[1] as string;
    if (attached && owner(extra).uid !== uid) out.push("an attached disk is not the guest's");
    if (!attached && (owner(extra).uid !== ORIGINAL.uid || selinux(extra) !== undefined))
      out.push('a detached disk kept a guest label');
    const iso = files[2] as string;
    if (!rec.live_xml.includes('media.iso') && selinux(iso) !== undefined) out.push('an ejected medium kept a label');
    // Its uid and its SELinux level, each claimed host-wide (src/store/host-claims.ts).
    const level = /model='selinux'[^>]*>\s*<label>[^<]*?:(s0:c\d+,c\d+)<\/label>/.exec(rec.live_xml)?.[1];
    const claims = claimsOfGuest(uuid).sort().join(' ');
    if (claims !== `dac.${uid} selinux.${level}`) out.push(`a running guest's host-wide claims are [${claims}]`);
  } else {
    if (pids.length > 0) out.push(`no running record but QEMU ${pids.join(',')} runs`);
    if (swtpmPids(uuid).length > 0) out.push(`no running record but swtpm ${swtpmPids(uuid).join(',')} runs`);
    const tpmDir = join(dir, 'swtpm', uuid, 'tpm2');
    const tpm = existsSync(tpmDir) ? owner(tpmDir) : { uid: 0, mode: 0o700 };
    if (tpm.uid !== 0 || tpm.mode !== 0o700)
      out.push(`the TPM state dir is ${tpm.uid} mode ${tpm.mode.toString(8)} while the guest is stopped`);
    for (const f of files) {
      const o = owner(f);
      if (o.uid !== ORIGINAL.uid || o.mode !== ORIGINAL.mode)
        out.push(`${f} owned by ${o.uid} mode ${o.mode.toString(8)} while the guest is stopped`);
      if (selinux(f) !== undefined) out.push(`${f} keeps SELinux label ${selinux(f)} while the guest is stopped`);
    }
    if (countRows(dir, 'reservations') !== 0) out.push('a reservation leaked');
    const claims = claimsOfGuest(uuid);
    if (claims.length !== 0) out.push(`a host-wide label claim leaked: ${claims.join()}`);
    if (countRows(dir, 'remembered_users') !== 0) out.push('a remembered owner leaked');
  }
  return out;
}

describe('crash safety (svirt killed at every step, then any command repairs)', { skip }, () => {
  it('leaves no guest label, reservation or half-state behind at any crash point', async (t) => {
    const results: { point: string; problems: string[] }[] = [];
    for (const point of CRASH_POINTS) {
      const dir = scratch(t, `svirt-crash-${point.replace(':', '-')}-`);
      const disk = makeImage(join(dir, 'g.img'), 4, ORIGINAL, 0o644);
      const files = [
        disk,
        makeImage(join(dir, 'extra.img'), 4, ORIGINAL, 0o644),
        makeImage(join(dir, 'media.iso'), 1, ORIGINAL, 0o644),
      ];
      const xml = domainXml('g', [{ path: disk, dev: 'vda' }]).replace(
        '  </devices>',
        "    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><target dev='hdc' bus='ide'/><readonly/></disk>\n" +
          "    <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>\n  </devices>",
      );
      await svirtOk(dir, [...STACK, 'define', writeDomain(dir, 'g', xml)], ENV);
      const uuid = (await svirtOk(dir, [...STACK, 'domuuid', 'g'], ENV)).trim();
      const s = scenario(point, dir);
      for (const cmd of s.setup) await svirtOk(dir, [...STACK, ...cmd], ENV);
      const crashed = await svirt(dir, [...STACK, ...s.crash], { ...ENV, SVIRT_TEST_CRASH_AT: point });
      const problems: string[] = [];
      if (crashed.code !== 128)
        problems.push(`the command did not crash at ${point} (exit ${crashed.code}: ${crashed.stderr.trim()})`);
      // Any next command repairs; wait a moment for the monitor's own reconcile too.
      await svirtOk(dir, [...STACK, 'list', '--all'], ENV);
      await new Promise((r) => setTimeout(r, 300));
      await svirtOk(dir, [...STACK, 'list', '--all'], ENV);
      problems.push(...violations(dir, files, uuid));
      results.push({ point, problems });
      await svirt(dir, [...STACK, 'destroy', 'g'], ENV);
      rmSync(join(dir, 'g.save'), { force: true });
    }
    const bad = results.filter((r) => r.problems.length > 0);
    const total = results.reduce((n, r) => n + r.problems.length, 0);
    t.diagnostic(`${results.length} crash points, ${total} violations`);
    for (const r of bad) t.diagnostic(`  ${r.point}: ${r.problems.join('; ')}`);
    assert.equal(total, 0, bad.map((r) => `${r.point}: ${r.problems.join('; ')}`).join('\n'));
    assert.equal(results.length, CRASH_POINTS.length);
  });
});
