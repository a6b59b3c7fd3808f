/**
 * Live migration under an enforcing SELinux kernel (issue 16's lab acceptance): two svirt
 * hosts (two state dirs, each its serve in a network namespace of its own) in the lab's
 * SELinux VM, stack selinux,dac,landlock. The guest hops there and back; after each hop its
 * QEMU runs as svirt_t at the new host's category pair, the shared image carries
 * svirt_image_t at that same pair (the pair follows the guest), the old host holds no
 * reservation, and at the end the image gets its original label back. The destination's
 * QEMU starts without the image (SELinux would close an inherited fd of a file still at the
 * source's pair) and gets it over QMP once the image is at its own pair
 * (src/lifecycle/migrate/attach-later.ts). A second case copies the disk instead
 * (--copy-storage-all): each host's own image at the guest's pair while it runs there. Runs
 * only in the lab.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { join } from 'node:path';
import { makeHosts, type TestHost } from '../support/hosts.js';
import { writeFileSync } from 'node:fs';
import { assertRunsOn, guestXml, qemuPid, traces, writeXmlFiles } from '../migrate/support.js';
import { fileContext, LabDirs, labImage, labSkip, parseContext, procLabel, run, svirtEntry } from './lab.js';

const skip = labSkip('selinux');
const dirs = new LabDirs();
after(() => dirs.cleanup());

const STACK = 'selinux,dac,landlock';

function level(ctx: string): string {
  return parseContext(ctx).level;
}

describe('SELinux enforcing: live migration between two state dirs, the MCS pair follows the guest', { skip }, () => {
  it('4 hops: QEMU svirt_t and the image svirt_image_t at the same pair, a new pair on each host, the original label back at the end', async (t) => {
    const [h1, h2] = makeHosts(t, 2, STACK, svirtEntry());
    assert.ok(h1 && h2);
    // svirt's state, as under /var/lib/svirt: what the manager's domain (virtd_t) may write
    for (const h of [h1, h2]) assert.equal(run('chcon', ['-t', 'virt_var_lib_t', h.stateDir]).code, 0);
    await Promise.all([h1.serve(), h2.serve()]);
    const dir = dirs.make('svirt-lab-mig-');
    const disk = labImage(join(dir, 'disk.img'));
    const original = fileContext(disk);
    const xml = writeXmlFiles(undefined, dir, disk, [h1, h2]);
    await h1.svirtOk(['define', xml.get(h1) as string]);
    await h1.svirtOk(['start', 'mig']);
    const seen: string[] = [];
    const check = async (h: TestHost): Promise<string> => {
      await assertRunsOn(h, disk, { qmp: false }); // QMP from the test needs the guest's socket label (lab.ts qmpConnect)
      const proc = procLabel(qemuPid(h));
      assert.equal(parseContext(proc).type, 'svirt_t', `${h.name}: QEMU runs as svirt_t (${proc})`);
      const img = fileContext(disk);
      assert.equal(parseContext(img).type, 'svirt_image_t', `${h.name}: the image is svirt_image_t (${img})`);
      assert.equal(level(img), level(proc), `${h.name}: the image's pair is the guest's (${img} vs ${proc})`);
      return level(proc);
    };
    seen.push(await check(h1));
    let here = h1;
    for (let hop = 1; hop <= 4; hop++) {
      const there = here === h1 ? h2 : h1;
      const r = await here.svirt(['migrate', '--live', '--xml', xml.get(there) as string, 'mig', there.uri]);
      assert.equal(r.code, 0, `hop ${hop}: ${r.stderr}`);
      const pair = await check(there);
      assert.notEqual(pair, seen[seen.length - 1], `hop ${hop}: a pair of the new host's, not the old one`);
      assert.deepEqual(traces(here), { running: 0, reserved: 0, remembered: 0 }, `hop ${hop}: ${here.name} holds nothing`);
      seen.push(pair);
      here = there;
    }
    t.diagnostic(`pairs: ${seen.join(' -> ')}`);
    await here.svirtOk(['destroy', 'mig']);
    assert.equal(fileContext(disk), original, 'the image has its label from before the first start');
  });

  it("--copy-storage-all: each host its own image, at the guest's pair while it runs there, back to its label after", async (t) => {
    const [h1, h2] = makeHosts(t, 2, STACK, svirtEntry());
    assert.ok(h1 && h2);
    for (const h of [h1, h2]) assert.equal(run('chcon', ['-t', 'virt_var_lib_t', h.stateDir]).code, 0);
    await Promise.all([h1.serve(), h2.serve()]);
    const dir = dirs.make('svirt-lab-copy-');
    const disks = new Map<TestHost, string>([
      [h1, labImage(join(dir, 'h1.img'))],
      [h2, join(dir, 'h2.img')], // created by h2's svirt at Prepare
    ]);
    const original = fileContext(disks.get(h1) as string);
    const xml = new Map<TestHost, string>();
    for (const h of [h1, h2]) {
      const f = join(dir, `${h.name}.xml`);
      writeFileSync(f, guestXml(undefined, dir, disks.get(h) as string, h));
      xml.set(h, f);
    }
    await h1.svirtOk(['define', xml.get(h1) as string]);
    await h1.svirtOk(['start', 'mig']);
    const check = async (h: TestHost): Promise<string> => {
      const disk = disks.get(h) as string;
      await assertRunsOn(h, disk, { qmp: false });
      const proc = procLabel(qemuPid(h));
      const img = fileContext(disk);
      assert.equal(parseContext(img).type, 'svirt_image_t', `${h.name}: its own image is svirt_image_t (${img})`);
      assert.equal(level(img), level(proc), `${h.name}: the image's pair is the guest's (${img} vs ${proc})`);
      return level(proc);
    };
    const pairs = [await check(h1)];
    let here = h1;
    for (let hop = 1; hop <= 2; hop++) {
      const there = here === h1 ? h2 : h1;
      const r = await here.svirt([
        'migrate',
        '--live',
        '--copy-storage-all',
        '--xml',
        xml.get(there) as string,
        'mig',
        there.uri,
      ]);
      assert.equal(r.code, 0, `hop ${hop}: ${r.stderr}`);
      pairs.push(await check(there));
      assert.deepEqual(traces(here), { running: 0, reserved: 0, remembered: 0 }, `hop ${hop}: ${here.name} holds nothing`);
      const left = fileContext(disks.get(here) as string);
      assert.notEqual(
        parseContext(left).type,
        'svirt_image_t',
        `hop ${hop}: ${here.name}'s image is no longer a guest's (${left})`,
      );
      here = there;
    }
    t.diagnostic(`pairs: ${pairs.join(' -> ')}`);
    await here.svirtOk(['destroy', 'mig']);
    assert.equal(fileContext(disks.get(h1) as string), original, "the source's image has its label from before the first start");
  });
});
