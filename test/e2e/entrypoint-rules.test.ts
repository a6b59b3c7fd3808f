/**
 * The `[entrypoints]` table of a state dir's access.toml reaches every start (issue 15,
 * docs/entrypoints.md): a disk outside `allow` is refused naming the rule, with the image
 * untouched; one inside starts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { domainXml, makeImage, owner, qemuAsRootSkip, readRunning, scratch, svirt, svirtOk, writeDomain } from '../helpers.js';

const S = ['--security-driver', 'dac,landlock'];

describe('entrypoint rules from access.toml', { skip: qemuAsRootSkip('the dac driver needs root') }, () => {
  it('refuses a disk outside entrypoints.allow, naming the rule, and starts one inside', async (t) => {
    const dir = scratch(t);
    const images = join(dir, 'images');
    mkdirSync(images, { mode: 0o755 });
    writeFileSync(join(dir, 'access.toml'), `# only this tree holds guests' files\n[entrypoints]\nallow = ["${images}"]\n`, {
      mode: 0o644,
    });
    const inside = makeImage(join(images, 'in.img'), 4, { uid: 1000, gid: 1000 });
    const outside = makeImage(join(dir, 'out.img'), 4, { uid: 1000, gid: 1000 });
    await svirtOk(dir, ['define', writeDomain(dir, 'out', domainXml('out', [{ path: outside, dev: 'vda' }]))]);
    await svirtOk(dir, ['define', writeDomain(dir, 'in', domainXml('in', [{ path: inside, dev: 'vda' }]))]);
    const before = owner(outside);
    const r = await svirt(dir, [...S, 'start', 'out', '--paused']);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      new RegExp(
        `^error: refusing disk ".*out\\.img": it is inside no allowed tree \\(entrypoints\\.allow = \\["${images}"\\]\\)$`,
        'm',
      ),
    );
    assert.deepEqual(owner(outside), before, 'the refused image keeps its owner and mode');
    assert.equal(readRunning(dir).length, 0);
    await svirtOk(dir, [...S, 'start', 'in', '--paused']);
    assert.notEqual(owner(inside).uid, 1000, 'the allowed image is handed to the guest');
    await svirtOk(dir, [...S, 'destroy', 'in']);
    // A broken rules file stops every command (fail closed), naming the line.
    writeFileSync(join(dir, 'access.toml'), '[entrypoints]\nallow = "nope"\n', { mode: 0o644 });
    const bad = await svirt(dir, [...S, 'start', 'in', '--paused']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /allow must be a list/);
  });

  it('admits a volume of an allowed pool (entrypoints.pools) and refuses one of another pool', async (t) => {
    const dir = scratch(t);
    const images = join(dir, 'images');
    mkdirSync(images, { mode: 0o755 });
    for (const p of ['fast', 'slow']) {
      await svirtOk(dir, ['pool-define-as', p, 'dir', '--target', join(dir, p)]);
      await svirtOk(dir, ['pool-start', p, '--build']);
      await svirtOk(dir, ['vol-create-as', p, 'v.img', '4M', '--format', 'raw']);
    }
    writeFileSync(join(dir, 'access.toml'), `[entrypoints]\nallow = ["${images}"]\npools = ["fast"]\n`, { mode: 0o644 });
    const fast = join(dir, 'fast', 'v.img');
    const slow = join(dir, 'slow', 'v.img');
    await svirtOk(dir, ['define', writeDomain(dir, 'f', domainXml('f', [{ path: fast, dev: 'vda' }]))]);
    await svirtOk(dir, ['define', writeDomain(dir, 's', domainXml('s', [{ path: slow, dev: 'vda' }]))]);
    const before = owner(slow);
    const r = await svirt(dir, [...S, 'start', 's', '--paused']);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /^error: refusing disk ".*slow\/v\.img": it is inside no allowed tree .* or a volume of entrypoints\.pools = \["fast"\]$/m,
    );
    assert.deepEqual(owner(slow), before, 'the refused volume keeps its owner and mode');
    await svirtOk(dir, [...S, 'start', 'f', '--paused']);
    assert.notEqual(owner(fast).uid, 0, 'the pool volume is handed to the guest');
    await svirtOk(dir, [...S, 'destroy', 'f']);
    // A pool that is not active admits nothing.
    await svirtOk(dir, ['pool-destroy', 'fast']);
    const off = await svirt(dir, [...S, 'start', 'f', '--paused']);
    assert.notEqual(off.code, 0);
    assert.match(off.stderr, /refusing disk ".*fast\/v\.img": it is inside no allowed tree/);
  });
});
