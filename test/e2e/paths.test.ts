/**
 * Paths as libvirt takes them (issue 12, seed parity): a disk path with `/./` or `/../` is
 * resolved, labelled and given back like any other; the AppArmor profile names the file the
 * kernel reaches (the sVirt AppArmor test plan's row "uses a disk with '/./' or '/../'").
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { domainXml, makeImage, owner, qemuAsRootSkip, scratch, svirtOk, writeDomain } from '../helpers.js';

const skip = qemuAsRootSkip();

describe("disk paths with '/./' and '/../' (real QEMU)", { skip }, () => {
  it('start, profile and destroy act on the resolved file', async (t) => {
    const dir = scratch(t);
    mkdirSync(join(dir, 'images', 'sub'), { recursive: true });
    const img = makeImage(join(dir, 'images', 'a.img'), 4, { uid: 1000, gid: 1000 }, 0o644);
    const declared = join(dir, 'images') + '/./sub/../a.img';
    const env = { SVIRT_APPARMOR_MODE: 'compile-only', SVIRT_APPARMOR_PROFILE_DIR: join(dir, 'apparmor') };
    const S = ['--security-driver', 'apparmor,dac,landlock'];
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'p', domainXml('p', [{ path: declared, dev: 'vda' }]))], env);
    await svirtOk(dir, [...S, 'start', 'p', '--paused'], env);
    assert.notEqual(owner(img).uid, 1000, 'the resolved file is the guest uid while it runs');
    assert.match(await svirtOk(dir, [...S, 'dumpxml', 'p'], env), /\/\.\/sub\/\.\.\/a\.img/, 'the XML keeps the path as written');
    const profiles = readdirSync(join(dir, 'apparmor'), { recursive: true }).map(String);
    const text = profiles.map((f) => {
      try {
        return readFileSync(join(dir, 'apparmor', f), 'utf8');
      } catch {
        return ''; // a directory
      }
    });
    assert.ok(
      text.some((x) => x.includes(`"${img}" rwk,`) || x.includes(`${img} rwk,`)),
      'a rule for the resolved image',
    );
    await svirtOk(dir, [...S, 'destroy', 'p'], env);
    assert.deepEqual(owner(img), { uid: 1000, gid: 1000, mode: 0o644 });
  });
});
