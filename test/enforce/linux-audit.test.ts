/**
 * Issue 15, part 4, in the enforcement lab: the Linux audit records svirt sends (libvirt's
 * VIRT_CONTROL 2500, VIRT_RESOURCE 2501 and VIRT_MACHINE_ID 2502) appear in the audit log. The lab has no auditd,
 * so with audit enabled the kernel prints them (`audit: type=2500 … msg='virt=qemu …'`);
 * the test enables audit in the lab VM for its run (it is 0 at boot) and restores it after.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { auditEnabled } from '../../src/host/native.js';
import { eventually, kernelLog, LabDirs, labImage, labSkip, svirtOk } from './lab.js';

const skip = labSkip('selinux') && labSkip('apparmor');

describe('Linux audit records of management operations (lab)', { skip, timeout: 600_000 }, () => {
  const dirs = new LabDirs();
  let was: number | string = 0;

  before(() => {
    was = auditEnabled();
    if (was === 0) assert.equal(auditEnabled(1), 1, 'audit can be enabled in the lab VM');
  });
  after(async () => {
    await dirs.cleanup();
    if (was === 0) auditEnabled(0);
  });

  it('sends VIRT_CONTROL for define/start/destroy and VIRT_MACHINE_ID with the labels, seen in the kernel log', async () => {
    const dir = dirs.make('svirt-laudit-');
    const xml = join(dir, 'la1.xml');
    const disk = labImage(join(dir, 'la1.img'), 1);
    writeFileSync(
      xml,
      "<domain type='qemu'><name>la1</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>" +
        "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>" +
        `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>` +
        '</devices></domain>\n',
    );
    const mark = kernelLog.mark();
    await svirtOk(dir, ['define', xml]);
    await svirtOk(dir, ['start', 'la1']);
    await svirtOk(dir, ['destroy', 'la1']);
    const control = (op: string) => () =>
      kernelLog.since(mark).filter((l) => /type=2500/.test(l) && l.includes(`op="${op}"`) && l.includes('vm="la1"'));
    for (const op of ['define', 'start', 'destroy']) {
      const lines = await eventually(control(op), 5000);
      assert.ok(lines.length > 0, `a VIRT_CONTROL record of ${op}: ${kernelLog.since(mark).slice(-20).join('\n')}`);
      assert.match(lines[0] ?? '', /res=success/);
    }
    const machine = await eventually(
      () => kernelLog.since(mark).filter((l) => /type=2502/.test(l) && l.includes('vm="la1"') && l.includes('op=label')),
      5000,
    );
    assert.ok(machine.length > 0, 'a VIRT_MACHINE_ID record with the labels applied at start');
    assert.match(machine[0] ?? '', /vm-ctx=/);
    const resource = await eventually(
      () => kernelLog.since(mark).filter((l) => /type=2501/.test(l) && l.includes('vm="la1"') && l.includes('resrc=')),
      5000,
    );
    assert.ok(resource.length > 0, 'VIRT_RESOURCE records of the files the guest was given at start');
    assert.match(resource.join('\n'), new RegExp(`resrc=disk reason=start .*new-disk="${disk}"`));
  });
});
