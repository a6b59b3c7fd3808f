import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { domainXml, haveQemu, isRoot, makeImage, scratch, writeDomain } from '../helpers.js';
import { assertConfined } from './confinement.js';
import { haveVirsh, startServer, virsh, virshOk } from './support.js';

const skip = !haveQemu()
  ? 'qemu-system-x86_64 is not installed'
  : !isRoot()
    ? 'the dac driver needs root'
    : !haveVirsh()
      ? 'virsh is not installed (apt-get install libvirt-clients)'
      : false;
const CLIENTS = 20;

describe('svirt serve with many virsh clients at once', { skip, timeout: 300_000 }, () => {
  it(`answers ${CLIENTS} concurrent virsh clients (list --all, dominfo, domstate), losing nothing`, async (t) => {
    const dir = scratch(t);
    const srv = await startServer(t, dir);
    const s = srv.socket;
    const a = makeImage(join(dir, 'a.img'));
    const b = makeImage(join(dir, 'b.img'));
    await virshOk(s, ['define', writeDomain(dir, 'c1', domainXml('c1', [{ path: a, dev: 'vda' }]))]);
    await virshOk(s, ['define', writeDomain(dir, 'c2', domainXml('c2', [{ path: b, dev: 'vda' }]))]);
    await virshOk(s, ['start', 'c1', '--paused']);
    const { uid } = assertConfined(dir, 'c1');

    const started = performance.now();
    const runs = await Promise.all(
      Array.from({ length: CLIENTS }, async (_, i) => {
        const [list, info, state] = await Promise.all([
          virsh(s, ['list', '--all']),
          virsh(s, ['dominfo', i % 2 === 0 ? 'c1' : 'c2']),
          virsh(s, ['domstate', 'c1']),
        ]);
        return { i, list, info, state };
      }),
    );
    const elapsed = performance.now() - started;
    for (const { i, list, info, state } of runs) {
      assert.equal(list.code, 0, `client ${i} list: ${list.stderr}`);
      assert.match(list.stdout, /^\s*\d+\s+c1\s+paused\s*$/m, `client ${i} sees c1`);
      assert.match(list.stdout, /^\s*-\s+c2\s+shut off\s*$/m, `client ${i} sees c2`);
      assert.equal(info.code, 0, `client ${i} dominfo: ${info.stderr}`);
      assert.match(info.stdout, /^Security model: dac$/m);
      if (i % 2 === 0) assert.match(info.stdout, new RegExp(`^Security label: \\+${uid}:\\+${uid} \\(enforcing\\)$`, 'm'));
      else assert.match(info.stdout, /^State:\s+shut off$/m);
      assert.equal(state.code, 0, `client ${i} domstate: ${state.stderr}`);
      assert.equal(state.stdout.trim(), 'paused');
    }
    t.diagnostic(
      `${CLIENTS * 3} virsh processes (${CLIENTS} clients x list/dominfo/domstate) answered in ${elapsed.toFixed(0)} ms`,
    );

    // Concurrent state changes on two guests, from two clients each: the store keeps them apart.
    const changes = await Promise.all([virsh(s, ['start', 'c2', '--paused']), virsh(s, ['resume', 'c1'])]);
    for (const r of changes) assert.equal(r.code, 0, r.stderr);
    const c2 = assertConfined(dir, 'c2');
    assert.notEqual(c2.uid, uid);
    assert.match(await virshOk(s, ['list']), /c1\s+running[\s\S]*c2\s+paused|c2\s+paused[\s\S]*c1\s+running/);
    await Promise.all([virshOk(s, ['destroy', 'c1']), virshOk(s, ['destroy', 'c2'])]);
  });
});
