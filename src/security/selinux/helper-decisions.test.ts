/**
 * What the Debian reference policy (selinux-policy-default) lets a helper process do at its
 * guest's context, judged offline by audit2why (scripts/selinux-decide.py): the facts the
 * SELinux driver's helperConfinement rests on. This kernel does not run SELinux.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SvirtError } from '../../errors.js';
import { domain } from '../../../test/support/selinux.js';
import { binaryPolicyPath, loadPolicyContexts } from './policy-files.js';
import { SelinuxDriver } from './selinux-driver.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../../../../scripts/selinux-decide.py', import.meta.url));
const A = 'system_u:system_r:svirt_t:s0:c1,c2';
const B = 'system_u:system_r:svirt_t:s0:c3,c4';
const IMAGE_A = 'system_u:object_r:svirt_image_t:s0:c1,c2';
const IMAGE_B = 'system_u:object_r:svirt_image_t:s0:c3,c4';

function policy(): string | undefined {
  try {
    return binaryPolicyPath(loadPolicyContexts('/etc/selinux').policyDir);
  } catch {
    return undefined; // reported as the skip reason
  }
}

const skip = !existsSync(PYTHON)
  ? `${PYTHON} is missing (Debian's python3 with python3-selinux)`
  : policy() === undefined
    ? 'no binary policy under /etc/selinux (install selinux-policy-default)'
    : false;

/** [what, scontext, tcontext, class, perms, expected result]. */
const QUERIES: readonly [string, string, string, string, string[], string][] = [
  [
    'a helper at the guest context runs swtpm and swtpm_setup (bin_t), no transition',
    A,
    'system_u:object_r:bin_t:s0',
    'file',
    ['execute', 'execute_no_trans', 'read', 'open', 'map'],
    'ALLOW',
  ],
  [
    'swtpm uses its state dir (the guest image label)',
    A,
    IMAGE_A,
    'dir',
    ['search', 'read', 'add_name', 'remove_name', 'write'],
    'ALLOW',
  ],
  [
    'swtpm writes and renames its state files',
    A,
    IMAGE_A,
    'file',
    ['create', 'read', 'write', 'open', 'rename', 'unlink', 'lock'],
    'ALLOW',
  ],
  [
    'swtpm_setup keeps its pid file in /tmp',
    A,
    'system_u:object_r:tmp_t:s0',
    'dir',
    ['search', 'add_name', 'write', 'remove_name'],
    'ALLOW',
  ],
  [
    'QEMU and swtpm share the socketpair svirt labels with the guest context',
    A,
    A,
    'unix_stream_socket',
    ['read', 'write'],
    'ALLOW',
  ],
  ["guest A's process cannot read B's swtpm state", A, IMAGE_B, 'file', ['read', 'open'], 'CONSTRAINT'],
  ["guest A's process cannot use B's swtpm socket", A, B, 'unix_stream_socket', ['read', 'write'], 'CONSTRAINT'],
  [
    'svirt_t may not execute QEMU’s virtiofsd (lib_t)',
    A,
    'system_u:object_r:lib_t:s0',
    'file',
    ['execute', 'execute_no_trans'],
    'TERULE',
  ],
  [
    'svirt_t may not chroot in its user namespace (virtiofsd’s sandbox)',
    A,
    A,
    'cap_userns',
    ['sys_chroot', 'sys_admin'],
    'TERULE',
  ],
];

describe('SELinux: what the reference policy lets a helper do (offline)', { skip }, () => {
  it('swtpm runs at its guest’s context and reaches only its guest’s state; virtiofsd cannot', (t) => {
    const input = JSON.stringify({
      policy: policy(),
      queries: QUERIES.map(([, scontext, tcontext, tclass, perms]) => ({ scontext, tcontext, tclass, perms })),
    });
    const r = spawnSync(PYTHON, [SCRIPT], { input, encoding: 'utf8' });
    if (r.status === 2) {
      t.skip((JSON.parse(r.stdout) as { error: string }).error);
      return;
    }
    assert.equal(r.status, 0, r.stderr);
    const answers = (JSON.parse(r.stdout) as { answers: { result: string }[] }).answers;
    QUERIES.forEach(([what, , , , , expected], i) => {
      t.diagnostic(`${answers[i]?.result ?? '?'}  ${what}`);
      assert.equal(answers[i]?.result, expected, what);
    });
  });

  it('so the driver refuses virtiofsd where it applies a context, and gives swtpm the guest’s', () => {
    const enforcing = new SelinuxDriver({ userspaceTest: false });
    const label = { type: 'dynamic' as const, model: 'selinux', label: A, imagelabel: IMAGE_A, relabel: true };
    const def = domain('g', 1);
    const swtpm = { kind: 'swtpm' as const, id: 'tpm0', binary: '/usr/bin/swtpm', paths: [] };
    const virtiofsd = { kind: 'virtiofsd' as const, id: 'fs0', binary: '/usr/lib/qemu/virtiofsd', paths: [] };
    assert.deepEqual(enforcing.helperConfinement(def, label, swtpm), { selinuxExecLabel: A });
    assert.throws(
      () => enforcing.helperConfinement(def, label, virtiofsd),
      (e: unknown) => e instanceof SvirtError && e.code === 'SVIRT_ERR_CONFINE' && /virtiofsd \(lib_t\)/.test(e.message),
    );
    assert.match(enforcing.describeHelper(def, label, virtiofsd), /^refused: /);
  });
});
