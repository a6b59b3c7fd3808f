import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SvirtError } from '../../errors.js';
import { domain } from '../../../test/support/selinux.js';
import { SelinuxDriver } from './selinux-driver.js';
import { tapFdAction } from './tap-label.js';
import type { XattrHost } from './labeller.js';

const LABEL = {
  type: 'dynamic',
  model: 'selinux',
  relabel: true,
  label: 'system_u:system_r:svirt_t:s0:c7,c9',
  imagelabel: 'system_u:object_r:svirt_image_t:s0:c7,c9',
} as const;

describe('SELinux: the tap fd label (libvirt SetTapFDLabel)', () => {
  it('labels a macvtap node fd with the image label and leaves /dev/net/tun alone', () => {
    assert.deepEqual(tapFdAction('/dev/tap12', true, LABEL.imagelabel), { kind: 'label', label: LABEL.imagelabel });
    assert.equal(tapFdAction('/dev/net/tun', true, LABEL.imagelabel).kind, 'leave');
    assert.equal(tapFdAction('/dev/tap12', true, undefined).kind, 'leave');
    assert.throws(
      () => tapFdAction('/tmp/x', false, LABEL.imagelabel),
      (e: unknown) => e instanceof SvirtError && /not a character device/.test(e.message),
    );
  });

  it(
    "a real tun fd (the kind svirt hands QEMU): the driver writes no label on /dev/net/tun's shared inode",
    {
      skip:
        (!existsSync('/etc/selinux/config') && 'no SELinux policy installed') ||
        (process.getuid?.() !== 0 && '/dev/net/tun needs root here'),
    },
    () => {
      const calls: string[] = [];
      const xattrs: XattrHost = {
        lgetxattr: () => undefined,
        lsetxattr: (p) => void calls.push(`lset ${p}`),
        lremovexattr: (p) => void calls.push(`lremove ${p}`),
        fgetxattr: () => undefined,
        fsetxattr: (fd) => void calls.push(`fset ${fd}`),
        fremovexattr: (fd) => void calls.push(`fremove ${fd}`),
      };
      const driver = new SelinuxDriver({ userspaceTest: true, xattrs });
      const fd = openSync('/dev/net/tun', 'r+');
      try {
        driver.setTapFdLabel(domain('tapguest', 1), LABEL, fd);
      } finally {
        closeSync(fd);
      }
      assert.deepEqual(calls, []);
    },
  );
});

const SCRIPT = fileURLToPath(new URL('../../../../scripts/selinux-decide.py', import.meta.url));

function policyFile(): string | undefined {
  const dir = '/etc/selinux/default/policy';
  const f = existsSync(dir) ? readdirSync(dir).find((n) => /^policy\.\d+$/.test(n)) : undefined;
  return f === undefined ? undefined : `${dir}/${f}`;
}

describe('SELinux: what the policy lets a guest do with a tun fd (Debian reference policy, offline)', () => {
  it("QEMU (svirt_t) may use the tun fd it inherits; it may not attach a queue to another guest's tap", (t) => {
    const policy = policyFile();
    if (policy === undefined || !existsSync('/usr/bin/python3')) {
      t.skip('no binary policy under /etc/selinux/default (selinux-policy-default) or no python3');
      return;
    }
    const a = 'system_u:system_r:svirt_t:s0:c7,c9';
    const queries = [
      { scontext: a, tcontext: 'system_u:object_r:tun_tap_device_t:s0', tclass: 'chr_file', perms: ['read', 'write', 'ioctl'] },
      { scontext: a, tcontext: 'system_u:system_r:svirt_t:s0:c1,c2', tclass: 'tun_socket', perms: ['attach_queue'] },
    ];
    const r = spawnSync('/usr/bin/python3', [SCRIPT], { input: JSON.stringify({ policy, queries }), encoding: 'utf8' });
    if (r.status === 2) {
      t.skip((JSON.parse(r.stdout) as { error: string }).error);
      return;
    }
    assert.equal(r.status, 0, r.stderr);
    const answers = (JSON.parse(r.stdout) as { answers: { allowed: boolean; result: string }[] }).answers;
    assert.equal(answers[0]?.allowed, true, 'the inherited tun fd is usable: nothing to relabel on /dev/net/tun');
    assert.equal(answers[1]?.allowed, false, "attaching a queue to another guest's tap is denied");
  });
});
