/**
 * A save whose definition no longer fits its stream: QEMU exits while svirt talks to it over
 * QMP. The error must be QEMU's own reason (not "read ECONNRESET"), and the restore must leave
 * nothing behind (no record, images back with their owners, the file kept).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { readSaveHeader, saveKey, writeHeader } from '../../src/lifecycle/save-file.js';
import { countRows, domainXml, makeImage, owner, qemuAsRootSkip, scratch, svirt, svirtOk, writeDomain } from '../helpers.js';

const S = ['--security-driver', 'dac,landlock'];

describe('restore of a state that does not fit its definition', { skip: qemuAsRootSkip() }, () => {
  it("reports QEMU's reason in one line and leaves nothing behind", async (t) => {
    const dir = scratch(t);
    const a = makeImage(join(dir, 'a.img'));
    const b = makeImage(join(dir, 'b.img'));
    const xml = domainXml('misfit', [
      { path: a, dev: 'vda' },
      { path: b, dev: 'vdb' },
    ]);
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'misfit', xml)]);
    await svirtOk(dir, [...S, 'start', 'misfit']);
    const file = join(dir, 'misfit.save');
    await svirtOk(dir, [...S, 'save', 'misfit', file]);
    // The same sealed header, with the second disk taken out of the definition.
    const key = saveKey(dir);
    const rd = openSync(file, 'r');
    const h = readSaveHeader(rd, file, key);
    closeSync(rd);
    const xmlWithout = h.xml.replace(
      /<disk type='file' device='disk'>(?:(?!<\/disk>)[\s\S])*?vdb(?:(?!<\/disk>)[\s\S])*?<\/disk>/,
      '',
    );
    assert.notEqual(xmlWithout, h.xml, 'the second disk was in the saved definition');
    const wr = openSync(file, 'r+'); // offset 0: writeHeader writes where the fd stands
    writeHeader(wr, { ...h, xml: xmlWithout }, key);
    closeSync(wr);
    const before = [owner(a), owner(b)];
    const r = await svirt(dir, [...S, 'restore', file]);
    assert.notEqual(r.code, 0);
    // QEMU may die before svirt reaches its monitor, while svirt queries devices, or while the
    // state loads: each path must carry QEMU's own reason.
    assert.match(r.stderr, /(QEMU exited during start( \(exit 1\))?|loading the saved state failed): .*Unknown savevm section/);
    assert.doesNotMatch(r.stderr, /ECONNRESET/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.equal(countRows(dir, 'running'), 0);
    assert.equal(countRows(dir, 'reservations'), 0);
    assert.deepEqual([owner(a), owner(b)], before);
    assert.ok(existsSync(file), 'the save file is kept');
  });
});
