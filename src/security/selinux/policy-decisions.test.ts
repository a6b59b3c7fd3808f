/**
 * The proof: labels the driver put on real files for two guests, judged offline by the
 * installed Debian reference policy (selinux-policy-default) through libselinux's
 * audit2why (scripts/selinux-decide.py under Debian's /usr/bin/python3). This kernel does
 * not run SELinux, so these are the policy's decisions, not observed enforcement.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lgetxattr, nativeOutDir } from '../../host/native.js';
import type { GuestResource } from '../driver.js';
import { SELINUX_XATTR } from './labeller.js';
import { binaryPolicyPath, loadPolicyContexts } from './policy-files.js';
import { SelinuxDriver } from './selinux-driver.js';
import { POLICY_BOOLEANS } from './label-support.js';
import { domain, MemoryLabelMemory, MemoryReservations, securityContext, tempDir } from '../../../test/support/selinux.js';
import { restoreAllLabel, setAllLabel } from '../../../test/support/stack.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../../../../scripts/selinux-decide.py', import.meta.url));

interface Query {
  readonly what: string;
  readonly scontext: string;
  readonly tcontext: string;
  readonly tclass: string;
  readonly perms: readonly string[];
  /** ALLOW, or the audit2why reason expected for the denial. */
  readonly expect: string | readonly string[];
}

interface Answer {
  readonly allowed: boolean;
  readonly result: string;
  readonly detail: string | null;
}

function policyPath(): string | undefined {
  try {
    return binaryPolicyPath(loadPolicyContexts('/etc/selinux').policyDir);
  } catch {
    // No policy configuration: reported as the skip reason.
    return undefined;
  }
}

/** Why a decision test cannot run here; `files`: it also labels real files. */
function skipReason(files: boolean): string | undefined {
  if (!existsSync(PYTHON)) return `${PYTHON} is missing (Debian's python3 with python3-selinux)`;
  if (policyPath() === undefined) return 'no binary policy under /etc/selinux (install selinux-policy-default)';
  if (!files) return undefined;
  if (process.getuid?.() !== 0) return 'needs root to write security.* and trusted.* xattrs';
  if (!existsSync(join(nativeOutDir(), 'svirt_native.node'))) return 'native addon not built (npm run build:native)';
  return undefined;
}

/** Runs the decisions; a Python without selinux.audit2why is a skip reason, not a failure. */
function decide(queries: readonly Query[]): Answer[] | string {
  const input = JSON.stringify({
    policy: policyPath(),
    queries: queries.map(({ scontext, tcontext, tclass, perms }) => ({ scontext, tcontext, tclass, perms })),
  });
  const r = spawnSync(PYTHON, [SCRIPT], { input, encoding: 'utf8' });
  if (r.status === 2) return (JSON.parse(r.stdout) as { error: string }).error;
  assert.equal(r.status, 0, `selinux-decide.py failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { answers: Answer[] }).answers;
}

function labelOf(path: string): string {
  const v = lgetxattr(path, SELINUX_XATTR);
  assert.ok(v !== undefined, `${path} has a label`);
  return v.toString('utf8').replace(/\0+$/, '');
}

function judge(t: TestContext, queries: readonly Query[]): void {
  const answers = decide(queries);
  if (typeof answers === 'string') {
    t.skip(answers);
    return;
  }
  const rows: string[] = [];
  queries.forEach((q, i) => {
    const a = answers[i];
    assert.ok(a !== undefined);
    rows.push(`${a.allowed ? 'allowed' : 'denied '} ${a.result.padEnd(10)} ${q.what}`);
    const expected = typeof q.expect === 'string' ? [q.expect] : q.expect;
    assert.ok(expected.includes(a.result), `${q.what}: expected ${expected.join('|')}, got ${a.result} ${a.detail ?? ''}`);
    assert.equal(a.allowed, q.expect === 'ALLOW', q.what);
    if (a.result === 'CONSTRAINT') assert.match(a.detail ?? '', /h1 dom h2/, `${q.what}: the MCS constraint`);
  });
  for (const row of rows) t.diagnostic(row);
}

describe('SELinux policy decisions (Debian reference policy, offline)', () => {
  it('two guests: each reaches only its own files, shared ones as intended', async (t) => {
    const reason = skipReason(true);
    if (reason !== undefined) {
      t.skip(reason);
      return;
    }
    const { dir, cleanup } = tempDir('svirt-selinux-proof-');
    t.after(cleanup);
    const driver = new SelinuxDriver({ userspaceTest: true });
    const memory = new MemoryLabelMemory();
    const reservations = new MemoryReservations();
    const ctx = securityContext(memory, reservations, dir);
    const file = (name: string): string => {
      const p = join(dir, name);
      writeFileSync(p, name);
      return p;
    };
    const iso = file('install.iso');
    const shared = file('cluster.img');
    const guests = [];
    for (const [i, name] of ['a', 'b'].entries()) {
      const run = join(dir, `run-${name}`);
      mkdirSync(run);
      const res: GuestResource[] = [
        { path: run, role: 'runtime-dir', seclabels: [] },
        { path: file(`${name}.img`), role: 'disk', seclabels: [] },
        { path: file(`${name}-serial.log`), role: 'chardev', seclabels: [] },
        { path: iso, role: 'disk-readonly', seclabels: [] },
        { path: shared, role: 'disk-shareable', seclabels: [] },
      ];
      const def = domain(name, 100 + i);
      const label = driver.genLabel(def, ctx);
      await setAllLabel(driver, def, label, res, ctx);
      guests.push({
        def,
        label,
        res,
        proc: label.label ?? '',
        img: labelOf(res[1]?.path ?? ''),
        run: labelOf(run),
        log: labelOf(res[2]?.path ?? ''),
      });
    }
    const [a, b] = guests;
    assert.ok(a !== undefined && b !== undefined);
    assert.notEqual(a.proc, b.proc);
    t.diagnostic(`A = ${a.proc}, image ${a.img}`);
    t.diagnostic(`B = ${b.proc}, image ${b.img}`);
    const rw = ['open', 'read', 'write', 'getattr', 'lock'];
    judge(t, [
      { what: 'A → its own image read/write', scontext: a.proc, tcontext: a.img, tclass: 'file', perms: rw, expect: 'ALLOW' },
      {
        what: 'A → its own runtime dir (create the QMP socket)',
        scontext: a.proc,
        tcontext: a.run,
        tclass: 'dir',
        perms: ['search', 'write', 'add_name', 'remove_name'],
        expect: 'ALLOW',
      },
      {
        what: 'A → its own serial log append',
        scontext: a.proc,
        tcontext: a.log,
        tclass: 'file',
        perms: ['open', 'append'],
        expect: 'ALLOW',
      },
      { what: "A → B's image read", scontext: a.proc, tcontext: b.img, tclass: 'file', perms: ['read'], expect: 'CONSTRAINT' },
      { what: "A → B's image write", scontext: a.proc, tcontext: b.img, tclass: 'file', perms: ['write'], expect: 'CONSTRAINT' },
      { what: "A → B's image open", scontext: a.proc, tcontext: b.img, tclass: 'file', perms: ['open'], expect: 'CONSTRAINT' },
      { what: "B → A's image read", scontext: b.proc, tcontext: a.img, tclass: 'file', perms: ['read'], expect: 'CONSTRAINT' },
      {
        what: "A → B's runtime dir (reach B's QMP socket)",
        scontext: a.proc,
        tcontext: b.run,
        tclass: 'dir',
        perms: ['search'],
        expect: 'CONSTRAINT',
      },
      {
        what: "A → B's process signal",
        scontext: a.proc,
        tcontext: b.proc,
        tclass: 'process',
        perms: ['signal'],
        expect: 'CONSTRAINT',
      },
      {
        what: 'A → its own process signal (svirt_t may signal itself)',
        scontext: a.proc,
        tcontext: a.proc,
        tclass: 'process',
        perms: ['signal'],
        expect: 'ALLOW',
      },
      {
        what: 'A → shareable image read/write',
        scontext: a.proc,
        tcontext: labelOf(shared),
        tclass: 'file',
        perms: rw,
        expect: 'ALLOW',
      },
      {
        what: 'B → shareable image read/write',
        scontext: b.proc,
        tcontext: labelOf(shared),
        tclass: 'file',
        perms: rw,
        expect: 'ALLOW',
      },
      {
        what: 'A → read-only content read',
        scontext: a.proc,
        tcontext: labelOf(iso),
        tclass: 'file',
        perms: ['open', 'read'],
        expect: 'ALLOW',
      },
      // No allow rule; the policy's dontaudit rule only keeps the denial out of the log.
      {
        what: 'A → read-only content write',
        scontext: a.proc,
        tcontext: labelOf(iso),
        tclass: 'file',
        perms: ['write'],
        expect: ['DONTAUDIT', 'TERULE'],
      },
    ]);
    for (const g of guests) {
      await restoreAllLabel(driver, g.def, g.label, g.res, ctx);
      reservations.releaseGuest(g.def.uuid);
    }
    const restoredImage = guests[0]?.res[1]?.path ?? '';
    assert.equal(lgetxattr(restoredImage, SELINUX_XATTR), undefined, 'restored to "no label"');
  });

  it('what the host policy grants a guest process: /dev/kvm yes, execmem (TCG) only with virt_use_execmem', (t) => {
    const reason = skipReason(false);
    if (reason !== undefined) {
      t.skip(reason);
      return;
    }
    const driver = new SelinuxDriver({ userspaceTest: true });
    const ctx = securityContext(new MemoryLabelMemory(), new MemoryReservations(), '/run/svirt-test', 'qemu');
    const tcg = driver.genLabel(domain('tcg', 1), ctx).label ?? '';
    judge(t, [
      {
        what: 'guest → /dev/kvm',
        scontext: tcg,
        tcontext: 'system_u:object_r:kvm_device_t:s0',
        tclass: 'chr_file',
        perms: ['open', 'read', 'write', 'ioctl'],
        expect: 'ALLOW',
      },
      // Debian has no svirt_tcg_t: a TCG guest runs as svirt_t, whose JIT needs the boolean.
      { what: 'TCG guest → execmem', scontext: tcg, tcontext: tcg, tclass: 'process', perms: ['execmem'], expect: 'BOOLEAN' },
      // <rng>: svirt opens the random device and passes the fd; the policy lets svirt_t read it.
      ...(['urandom_device_t', 'random_device_t'] as const).map((type) => ({
        what: `guest → inherited /dev/${type.replace('_device_t', '')} fd (rng backend)`,
        scontext: tcg,
        tcontext: `system_u:object_r:${type}:s0`,
        tclass: 'chr_file',
        perms: ['read', 'getattr'],
        expect: 'ALLOW',
      })),
    ]);
    // <disk type='block'>: the node gets the guest's image label (svirt_image_t at its level).
    const other = driver.genLabel(domain('other', 2), ctx).label ?? '';
    const image = (proc: string): string => proc.replace(':system_r:svirt_t:', ':object_r:svirt_image_t:');
    judge(t, [
      {
        what: 'guest → its own block device',
        scontext: tcg,
        tcontext: image(tcg),
        tclass: 'blk_file',
        perms: ['open', 'read', 'write', 'getattr', 'ioctl', 'lock'],
        expect: 'ALLOW',
      },
      {
        what: "guest → another guest's block device",
        scontext: tcg,
        tcontext: image(other),
        tclass: 'blk_file',
        perms: ['read'],
        expect: 'CONSTRAINT',
      },
      {
        what: 'guest → an unlabelled host disk',
        scontext: tcg,
        tcontext: 'system_u:object_r:fixed_disk_device_t:s0',
        tclass: 'blk_file',
        perms: ['read'],
        expect: 'TERULE',
      },
    ]);
  });

  it('a file on NFS, CIFS or FUSE is governed by the boolean the driver names (genfscon type, audit2why)', (t) => {
    const reason = skipReason(false);
    if (reason !== undefined) {
      t.skip(reason);
      return;
    }
    // The type the policy gives a whole filesystem that keeps no labels: `genfscon nfs / ...nfs_t`.
    const r = spawnSync('seinfo', [policyPath() ?? '', '--genfscon'], { encoding: 'utf8' });
    if (r.status !== 0) {
      t.skip(`seinfo (setools) cannot list genfscon rules: ${r.error?.message ?? r.stderr}`);
      return;
    }
    const genfs = new Map<string, string>();
    for (const m of r.stdout.matchAll(/genfscon (\S+) \/\s+(\S+)/g)) genfs.set(m[1] ?? '', m[2] ?? '');
    const driver = new SelinuxDriver({ userspaceTest: true });
    const guest =
      driver.genLabel(domain('nfs', 1), securityContext(new MemoryLabelMemory(), new MemoryReservations())).label ?? '';
    const queries: Query[] = [];
    const booleans: string[] = [];
    for (const [fs, boolean] of POLICY_BOOLEANS) {
      const tcontext = genfs.get(fs);
      assert.ok(tcontext !== undefined, `the policy has a genfscon rule for ${fs}`);
      booleans.push(boolean);
      const rw = ['open', 'read', 'write', 'getattr', 'lock'];
      queries.push({
        what: `guest → ${fs} file (${tcontext}) read/write`,
        scontext: guest,
        tcontext,
        tclass: 'file',
        perms: rw,
        expect: 'BOOLEAN',
      });
    }
    assert.equal(genfs.get('smb3'), undefined, 'smb3 has no genfscon rule: no boolean is named for it');
    assert.deepEqual([...new Set(booleans)].sort(), ['virt_use_fusefs', 'virt_use_nfs', 'virt_use_samba']);
    const answers = decide(queries);
    if (typeof answers === 'string') {
      t.skip(answers);
      return;
    }
    judge(t, queries);
    queries.forEach((q, i) => {
      const named = booleans[i] ?? '?';
      assert.match(answers[i]?.detail ?? '', new RegExp(`'${named}'`), `${q.what}: audit2why names ${named}`);
    });
  });

  it('every generated label is a valid context of the policy, at both ends of the range', (t) => {
    const reason = skipReason(false);
    if (reason !== undefined) {
      t.skip(reason);
      return;
    }
    const queries: Query[] = [];
    for (const random of [() => 0, () => 0.9999999, Math.random, Math.random, Math.random]) {
      const driver = new SelinuxDriver({ userspaceTest: true, random });
      const ctx = securityContext(new MemoryLabelMemory(), new MemoryReservations());
      const l = driver.genLabel(domain('v', 1), ctx);
      queries.push({
        what: `${l.label ?? ''} → ${l.imagelabel ?? ''}`,
        scontext: l.label ?? '',
        tcontext: l.imagelabel ?? '',
        tclass: 'file',
        perms: ['read', 'write'],
        expect: 'ALLOW',
      });
    }
    judge(t, queries);
  });
});
