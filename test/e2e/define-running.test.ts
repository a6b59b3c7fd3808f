/**
 * A running transient guest that gets a definition (`svirt define`, or a migration with
 * --persistent) is persistent from then on, as in libvirt: dominfo says so, destroy keeps the
 * definition, and undefine makes it transient again.
 */
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { domainXml, makeImage, qemuAsRootSkip, scratch, svirtOk, writeDomain } from '../helpers.js';

const S = ['--security-driver', 'dac'];

async function persistent(dir: string, name: string): Promise<string | undefined> {
  return (JSON.parse(await svirtOk(dir, ['--json', 'dominfo', name])) as Record<string, string>)['Persistent'];
}

describe('define of a running transient guest', { skip: qemuAsRootSkip() }, () => {
  it('makes it persistent; destroy keeps the definition; undefine makes it transient again', async (t) => {
    const dir = scratch(t);
    const xml = domainXml('tr', [{ path: makeImage(join(dir, 'tr.img')), dev: 'vda' }]);
    const file = writeDomain(dir, 'tr', xml.replace('<name>tr</name>', `<name>tr</name><uuid>${randomUUID()}</uuid>`));
    await svirtOk(dir, [...S, 'create', file, '--paused']);
    assert.equal(await persistent(dir, 'tr'), 'no');
    await svirtOk(dir, [...S, 'define', file]);
    assert.equal(await persistent(dir, 'tr'), 'yes', 'defined while running: persistent');
    await svirtOk(dir, [...S, 'undefine', 'tr']);
    assert.equal(await persistent(dir, 'tr'), 'no', 'undefined while running: transient again');
    await svirtOk(dir, [...S, 'define', file]);
    await svirtOk(dir, [...S, 'destroy', 'tr']);
    assert.match(await svirtOk(dir, ['list', '--all', '--name']), /^tr$/m, 'the definition outlives the run');
  });
});
