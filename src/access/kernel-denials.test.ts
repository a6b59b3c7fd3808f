import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { attribute, contextLevel, dedupe, parseDenial, START_GRACE_MS, type LabelHold } from './kernel-denials.js';

// Lines in the forms the kernel prints them (dmesg / /dev/kmsg) and auditd writes them.
const KMSG_AVC =
  'audit: type=1400 audit(1764547200.5:812): avc:  denied  { open } for  pid=901 comm="qemu-system-x86" ' +
  'path="/var/lib/b.img" dev="vda" ino=12 scontext=system_u:system_r:svirt_t:s0:c10,c20 ' +
  'tcontext=system_u:object_r:svirt_image_t:s0:c30,c40 tclass=file permissive=0';
const AA_STACK =
  'type=AVC msg=audit(1764547201.250:813): apparmor="DENIED" operation="open" class="file" ' +
  'profile="svirt-6f1e4b1c-0000-4000-8000-000000000001//&svirt-manager" name="/etc/shadow" pid=902 ' +
  'comm="qemu-system-x86" requested_mask="r" denied_mask="r" fsuid=0 ouid=0';
const AA_SIGNAL =
  'audit: type=1400 audit(1764547202.000:814): apparmor="DENIED" operation="signal" class="signal" ' +
  'profile="svirt-aaaa" pid=903 comm="qemu-system-x86" requested_mask="send" denied_mask="send" signal=kill ' +
  'peer="svirt-6f1e4b1c-0000-4000-8000-000000000001"';

function hold(guest: string, driver: 'selinux' | 'apparmor', label: string, since: number): LabelHold {
  return { guest, driver, label, since };
}

describe('kernel denials', () => {
  it('parses SELinux and AppArmor records from the kernel log and audit.log', () => {
    const a = parseDenial(KMSG_AVC);
    assert.ok(a);
    assert.equal(a.at, 1764547200_500, 'a one-digit millisecond part is tenths');
    assert.equal(a.serial, 812);
    assert.equal(a.lsm, 'selinux');
    assert.equal(a.what, '{ open } file');
    assert.equal(a.name, '/var/lib/b.img');
    assert.equal(a.pid, 901);
    assert.equal(a.comm, 'qemu-system-x86');
    assert.equal(a.enforced, true);
    const b = parseDenial(AA_STACK);
    assert.ok(b);
    assert.deepEqual([b.lsm, b.what, b.name, b.at], ['apparmor', 'open r', '/etc/shadow', 1764547201_250]);
    assert.equal(parseDenial(AA_SIGNAL)?.object, 'svirt-6f1e4b1c-0000-4000-8000-000000000001');
    assert.equal(parseDenial(KMSG_AVC.replace('permissive=0', 'permissive=1'))?.enforced, false);
    assert.equal(parseDenial(AA_STACK.replace('"DENIED"', '"ALLOWED"'))?.enforced, false, 'complain mode');
    assert.equal(parseDenial('audit: type=1400 audit(1.0:1): apparmor="STATUS" operation="profile_load"'), undefined);
    assert.equal(parseDenial('type=SYSCALL msg=audit(1.0:2): arch=c000003e syscall=2'), undefined);
    assert.equal(parseDenial('random line'), undefined);
  });

  it('reads the level of a context, a range with equal ends as one level', () => {
    assert.equal(contextLevel('system_u:system_r:svirt_t:s0:c1,c2'), 's0:c1,c2');
    assert.equal(contextLevel('u:r:t:s0:c1,c2-s0:c1,c2'), 's0:c1,c2');
    assert.equal(contextLevel('u:r:t:s0-s0:c0.c1023'), 's0-s0:c0.c1023');
    assert.equal(contextLevel('kernel'), undefined);
  });

  it('attributes by the label held at the time, as subject or object, and never by a level without categories', () => {
    const t0 = 1764547200_000;
    const d = [parseDenial(KMSG_AVC), parseDenial(AA_STACK), parseDenial(AA_SIGNAL)].filter((x) => x !== undefined);
    const holds = [
      hold('old', 'selinux', 's0:c10,c20', t0 - 10 * START_GRACE_MS),
      hold('new', 'selinux', 's0:c10,c20', t0 - 1000),
      hold('victim', 'selinux', 's0:c30,c40', t0 - 5000),
      hold('aa', 'apparmor', 'svirt-6f1e4b1c-0000-4000-8000-000000000001', t0 + 30_000), // its start's own denials come first
      hold('plain', 'selinux', 's0', t0 - 5000),
    ];
    const got = attribute(d, holds).map((x) => [x.guest, x.role, x.serial]);
    assert.deepEqual(got, [
      ['new', 'subject', 812],
      ['victim', 'object', 812],
      ['aa', 'subject', 813],
      ['aa', 'object', 814],
    ]);
    const later = [hold('aa', 'apparmor', 'svirt-6f1e4b1c-0000-4000-8000-000000000001', t0 + START_GRACE_MS + 10_000)];
    assert.deepEqual(attribute(d, later), [], 'a label taken long after the record was not the culprit');
    assert.deepEqual(
      attribute(d, [hold('x', 'apparmor', 'svirt-6f1e4b1c', t0)]),
      [],
      'a profile is matched whole, not by prefix',
    );
  });

  it('keeps one of a record seen in both sources', () => {
    const a = parseDenial(KMSG_AVC);
    const b = parseDenial(`type=AVC msg=${KMSG_AVC.slice(KMSG_AVC.indexOf('audit('))}`);
    assert.ok(a && b);
    assert.equal(dedupe([a, b]).length, 1);
  });
});
