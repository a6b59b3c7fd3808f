import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers.js';
import { VIRSH, haveVirsh } from '../remote/support.js';
import { hostsSkip, makeHosts } from '../support/hosts.js';
import { assertRunsOn, makeDisk, traces, writeXmlFiles } from './support.js';

function virsh(uri: string, args: readonly string[]): { code: number; out: string } {
  const r = spawnSync(VIRSH, ['-q', '-c', uri, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? 1, out: `${r.stdout}${r.stderr}` };
}

describe('virsh migrate through svirt serve', { skip: hostsSkip() || (haveVirsh() ? false : 'virsh is not installed') }, () => {
  it('virsh migrate --live (client-driven) and --p2p (source-driven) move the guest and back', async (t) => {
    const [h1, h2] = makeHosts(t, 2);
    assert.ok(h1 && h2);
    await Promise.all([h1.serve(), h2.serve()]);
    const dir = tempDir(t, 'svirt-virsh-mig-');
    const disk = makeDisk(dir);
    const xml = writeXmlFiles(undefined, dir, disk, [h1, h2]);
    await h1.svirtOk(['define', xml.get(h1) as string]);
    await h1.svirtOk(['start', 'mig']);
    const a = await assertRunsOn(h1, disk);
    const there = virsh(h1.uri, ['migrate', '--live', '--xml', xml.get(h2) as string, 'mig', h2.uri]);
    assert.equal(there.code, 0, there.out);
    const b = await assertRunsOn(h2, disk);
    assert.notEqual(a.uid, b.uid);
    assert.deepEqual(traces(h1), { running: 0, reserved: 0, remembered: 0 });
    assert.match(virsh(h2.uri, ['domstate', 'mig']).out, /running/);
    const back = virsh(h2.uri, ['migrate', '--live', '--p2p', '--xml', xml.get(h1) as string, 'mig', h1.uri]);
    assert.equal(back.code, 0, back.out);
    await assertRunsOn(h1, disk);
    assert.deepEqual(traces(h2), { running: 0, reserved: 0, remembered: 0 });
    assert.match(virsh(h1.uri, ['dominfo', 'mig']).out, /State:\s+running/);
  });
});
