/**
 * The AppArmor side of the handover (docs/migration.md), step by step, with profiles compiled
 * by the real apparmor_parser (this kernel runs no AppArmor: compile-only). Each host has a
 * profile dir of its own, as two machines would. The destination's profile names the image
 * from Prepare on, before its QEMU holds any fd of it; the source's profile names it until
 * Confirm ends the source, then it is withdrawn. The enforcing run is the lab's.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers.js';
import { hostsSkip, makeHosts } from '../support/hosts.js';
import { Steps } from './steps.js';
import { UUID, makeDisk, qemuFdsOn, traces, writeXmlFiles } from './support.js';

const PROFILE = `svirt-${UUID}`;

function parserSkip(): string | false {
  const skip = hostsSkip();
  if (skip) return skip;
  return ['/usr/sbin/apparmor_parser', '/sbin/apparmor_parser'].some((p) => existsSync(p)) ? false : 'no apparmor_parser';
}

/** The compiled profile of host dir `aa` names `file` (its rules file, as apparmor_parser read it). */
function names(aa: string, file: string): boolean {
  const rules = join(aa, `${PROFILE}.files`);
  return existsSync(rules) && readFileSync(rules, 'utf8').includes(`"${file}"`);
}

describe('migration under AppArmor: per-guest profiles at each step (compile-only)', { skip: parserSkip() }, () => {
  it("the destination's profile allows the image before its QEMU gets it; the source's loses it only once the source ended", async (t) => {
    const [h1, h2] = makeHosts(t, 2, 'apparmor,dac,landlock');
    assert.ok(h1 && h2);
    const dir = tempDir(t, 'svirt-aa-mig-');
    const aa1 = join(dir, 'aa-host1');
    const aa2 = join(dir, 'aa-host2');
    const env1 = { SVIRT_APPARMOR_MODE: 'compile-only', SVIRT_APPARMOR_PROFILE_DIR: aa1 };
    const env2 = { SVIRT_APPARMOR_MODE: 'compile-only', SVIRT_APPARMOR_PROFILE_DIR: aa2 };
    const [s1, s2] = await Promise.all([h1.serve(env1), h2.serve(env2)]);
    const disk = makeDisk(dir);
    const xml = writeXmlFiles(undefined, dir, disk, [h1, h2]);
    await h1.svirtOk(['define', xml.get(h1) as string], env1);
    await h1.svirtOk(['start', 'mig'], env1);
    assert.ok(names(aa1, disk), "the source's profile names the image");
    const steps = await Steps.open(s1, s2);
    try {
      await steps.begin();
      await steps.prepare(readFileSync(xml.get(h2) as string, 'utf8'));
      assert.ok(names(aa2, disk), "Prepare: the destination's profile names the image");
      assert.equal(qemuFdsOn(h2, disk), 0, "Prepare: the destination's QEMU holds no fd of it yet");
      assert.ok(names(aa1, disk), "Prepare: the source's profile still names it");
      await steps.perform();
      assert.ok(names(aa1, disk) && names(aa2, disk), 'Perform: both profiles name it');
      await steps.finish(false);
      assert.ok(qemuFdsOn(h2, disk) > 0, "Finish: the destination's QEMU has the image");
      assert.ok(names(aa1, disk), "Finish: the source's profile still names it (the source's QEMU has not ended)");
      await steps.confirm(false);
    } finally {
      steps.close();
    }
    assert.ok(!existsSync(join(aa1, PROFILE)) && !names(aa1, disk), "Confirm: the source's profile is withdrawn");
    assert.ok(names(aa2, disk), "Confirm: the destination's profile still names the image");
    assert.deepEqual(traces(h1), { running: 0, reserved: 0, remembered: 0 }, 'the source holds nothing');
    await h2.svirtOk(['destroy', 'mig'], env2);
    assert.ok(!existsSync(join(aa2, PROFILE)), "the destination's profile goes with the guest");
  });
});
