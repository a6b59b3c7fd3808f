/**
 * The manager's own MAC policy (docs/confinement.md), checked on a host whose kernel enforces
 * neither LSM: the AppArmor profile compiles with the real apparmor_parser, and the SELinux
 * module installs into a copy of Debian's policy store (as lab/build-policy.sh does) and the
 * compiled policy holds the manager's entry, what it needs, and not what it must not get.
 * Whether the kernel enforces them is the enforcement lab's (test/enforce/manager.test.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isRoot, scratch } from '../helpers.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const GEN = join(ROOT, 'policy', 'apparmor', 'gen-manager-profile.mjs');
const CIL = join(ROOT, 'policy', 'selinux', 'svirt.cil');
const PARSER = ['/usr/sbin/apparmor_parser', '/sbin/apparmor_parser'].find((p) => existsSync(p));
const POLICY = '/etc/selinux/default/policy/policy.33';
const FEATURES = '/usr/share/apparmor-features/features';

function gen(args: readonly string[]) {
  const r = spawnSync(process.execPath, [GEN, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function parse(file: string) {
  assert.ok(PARSER);
  // This kernel has no AppArmor: compile against the feature set of Debian's AppArmor 3.0
  // (what the lab's kernel offers; without it the parser assumes no stacking support).
  const features = existsSync(FEATURES) ? ['--features-file', FEATURES] : [];
  const r = spawnSync(PARSER, ['-Q', '--skip-kernel-load', '--skip-cache', ...features, file], { encoding: 'utf8' });
  return { code: r.status, err: r.stderr };
}

describe(
  'AppArmor profile of the manager (policy/apparmor)',
  { skip: PARSER ? false : 'apparmor_parser is not installed' },
  () => {
    it('generates and compiles for the default install and for the lab', (t) => {
      const dir = scratch(t);
      for (const [name, args] of [
        ['default', []],
        [
          'lab',
          ['--root', '/usr/local/lib/svirt', '--root', '/usr/local/lib/svirt-test', '--state-dir', '/tmp', '--image-dir', '/tmp'],
        ],
      ] as const) {
        const g = gen(args);
        assert.equal(g.code, 0, g.err);
        const file = join(dir, `svirt-manager.${name}`);
        writeFileSync(file, g.out);
        const p = parse(file);
        assert.equal(p.code, 0, `${name}: ${p.err}`);
        assert.match(g.out, /^profile svirt-manager @\{svirt_root\}\/native\/out\/svirt flags=\(attach_disconnected\) \{$/m);
      }
      const lab = gen(['--root', '/usr/local/lib/svirt', '--root', '/usr/local/lib/svirt-test', '--state-dir', '/tmp']).out;
      assert.match(lab, /^@\{svirt_root\}=\/usr\/local\/lib\/svirt \/usr\/local\/lib\/svirt-test$/m);
      assert.match(lab, /^@\{svirt_state\}=\/tmp$/m);
      // the default root is the package the generator lives in
      assert.match(gen([]).out, new RegExp(`^@\\{svirt_root\\}=${ROOT.replace(/\/$/, '')}$`, 'm'));
    });

    it('is enforcing (no complain flag), attaches to the launcher only, and grants no shadow file nor all files', () => {
      const text = gen([]).out;
      assert.doesNotMatch(text, /flags=\([^)]*complain/);
      const rules = text.split('\n').filter((l) => !l.trim().startsWith('#'));
      assert.equal(rules.filter((l) => /^profile /.test(l)).length, 1);
      assert.doesNotMatch(rules.join('\n'), /\/etc\/(shadow|gshadow)/);
      assert.doesNotMatch(rules.join('\n'), /^\s*\/\*\*\s/m, 'no rule on every file');
      assert.doesNotMatch(rules.join('\n'), /\bnode\b.*[PU]x/, 'node is not run unconfined');
      // guests leave for their own profile only
      assert.match(text, /^\s*change_profile \/usr\/bin\/qemu-system-\* -> &svirt-\[0-9a-f\]\*,$/m);
      // only ever a stack onto a guest's profile: never a change to any other
      for (const l of rules.filter((r) => /^\s*change_profile/.test(r))) assert.match(l, /-> &svirt-\[0-9a-f\]\*,$/, l);
    });

    it('refuses paths AppArmor would read as globs or syntax', () => {
      for (const bad of ['relative', '/a b', '/x/*', '/x{a,b}', '/x/../etc', '/x"y', '/x,y']) {
        const g = gen(['--root', bad]);
        assert.equal(g.code, 2, `${bad}: ${g.out}`);
        assert.match(g.err, /an absolute path of letters/);
      }
      assert.equal(gen(['--bogus', '/x']).code, 2);
      assert.equal(gen(['--node', '/a', '--node', '/b']).code, 2);
    });
  },
);

const semodule = ['/usr/sbin/semodule', '/sbin/semodule'].find((p) => existsSync(p));
const seSkip = !isRoot()
  ? 'installing into a copy of the policy store needs root'
  : !semodule || !existsSync('/usr/bin/sesearch')
    ? 'semodule or sesearch is not installed'
    : !existsSync(POLICY) || !existsSync('/var/lib/selinux/default')
      ? "Debian's reference policy store is not installed"
      : false;

describe('SELinux module of the manager (policy/selinux/svirt.cil)', { skip: seSkip }, () => {
  it(
    "installs into a copy of the reference policy; the compiled policy has the manager's entry and no more",
    { timeout: 300_000 },
    (t) => {
      const dir = scratch(t);
      mkdirSync(join(dir, 'etc'));
      mkdirSync(join(dir, 'var', 'lib'), { recursive: true });
      cpSync('/etc/selinux', join(dir, 'etc', 'selinux'), { recursive: true });
      cpSync('/var/lib/selinux', join(dir, 'var', 'lib', 'selinux'), { recursive: true });
      const r = spawnSync(semodule as string, ['-n', '-p', dir, '-i', CIL], { encoding: 'utf8' });
      assert.equal(r.status, 0, `semodule -i: ${r.stderr}`);
      const built = join(dir, 'etc', 'selinux', 'default', 'policy', 'policy.33');
      const q = (...args: string[]): string => {
        const s = spawnSync('sesearch', [built, ...args], { encoding: 'utf8' });
        assert.equal(s.status, 0, s.stderr);
        return s.stdout;
      };
      // the entry: an administrator executing the launcher becomes virtd_t, in system_r
      assert.match(
        q('-T', '-s', 'unconfined_t', '-t', 'virtd_exec_t', '-c', 'process'),
        /type_transition unconfined_t virtd_exec_t:process virtd_t;/,
      );
      assert.match(q('-A', '-s', 'unconfined_t', '-t', 'virtd_t', '-c', 'process'), /\btransition\b/);
      assert.match(q('--role_trans', '-s', 'unconfined_r'), /role_transition unconfined_r virtd_exec_t:process system_r;/);
      // what it needs to start QEMU
      assert.match(q('-A', '-s', 'virtd_t', '-t', 'svirt_t', '-c', 'process2'), /nnp_transition/);
      assert.match(q('-A', '-s', 'virtd_t', '-t', 'virt_var_lib_t', '-c', 'file'), /relabelfrom/);
      // and no more: nothing on shadow_t but the entrypoint rules' stat (getattr), no relabel of
      // arbitrary files, node (bin_t) no entry point
      assert.match(q('-A', '-s', 'virtd_t', '-t', 'shadow_t', '-c', 'file'), /^allow virtd_t shadow_t:file getattr;\s*$/);
      assert.doesNotMatch(q('-A', '-s', 'virtd_t', '-t', 'etc_t', '-c', 'file', '-p', 'relabelfrom'), /allow/);
      assert.doesNotMatch(q('-A', '-s', 'virtd_t', '-t', 'user_tmp_t', '-c', 'file', '-p', 'relabelfrom'), /allow/);
      assert.doesNotMatch(q('-T', '-s', 'unconfined_t', '-t', 'bin_t', '-c', 'process'), /virtd_t/);
      // restorecon gives svirt's default dirs and an installed launcher their types
      const fc = readFileSync(join(dir, 'etc', 'selinux', 'default', 'contexts', 'files', 'file_contexts'), 'utf8');
      assert.match(fc, /^\/var\/lib\/svirt\(\/\.\*\)\?\s+system_u:object_r:virt_var_lib_t:s0$/m);
      assert.match(fc, /^\/var\/lib\/svirt\/images\(\/\.\*\)\?\s+system_u:object_r:virt_image_t:s0$/m);
      assert.match(fc, /svirt\/native\/out\/svirt\s+--\s+system_u:object_r:virtd_exec_t:s0$/m);
      // the unconfined administrator no longer enters the guests' domain itself: only the manager does
      assert.doesNotMatch(q('-A', '-s', 'unconfined_t', '-t', 'svirt_t', '-c', 'process'), /\btransition\b/);
    },
  );
});
