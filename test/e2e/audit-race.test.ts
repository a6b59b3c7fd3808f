/**
 * The audit trail names the guest each command made, also when commands run at once: two
 * `svirt define`s side by side (a script, or Ansible's parallel tasks) each record their own
 * guest, once, and the privileged-label warning goes to the command and the guest it belongs
 * to; two `svirt create`s each record the transient guest they started.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { domainXml, haveQemu, isRoot, makeImage, scratch, svirt, svirtOk, writeDomain } from '../helpers.js';

const skip = haveQemu() ? (isRoot() ? false : 'needs root: a static dac label') : 'qemu is not installed';
const S = ['--security-driver', 'dac,landlock'];
const ROOT_LABEL = "\n  <seclabel type='static' model='dac' relabel='yes'><label>+0:+0</label></seclabel>";

interface AuditRow {
  op: string;
  guest?: string;
  permission?: string;
  result: string;
}

describe('audit trail under concurrent commands', { skip }, () => {
  it(
    'two defines at once each record their own guest; the warning goes to the privileged one',
    { timeout: 240_000 },
    async (t) => {
      const dir = scratch(t);
      const img = makeImage(join(dir, 'd.img'), 1);
      const ROUNDS = 8;
      for (let round = 0; round < ROUNDS; round++) {
        const plain = `plain${round}`;
        const rooted = `rooted${round}`;
        const files = [
          writeDomain(dir, plain, domainXml(plain, [{ path: img, dev: 'vda' }])),
          writeDomain(dir, rooted, domainXml(rooted, [{ path: img, dev: 'vda' }], ROOT_LABEL)),
        ];
        const [p, r] = await Promise.all(files.map((f) => svirt(dir, [...S, 'define', f])));
        assert.equal(p?.code, 0, p?.stderr);
        assert.equal(r?.code, 0, r?.stderr);
        assert.doesNotMatch(p?.stderr ?? '', /warning/, `round ${round}: the plain define warns of nothing`);
        assert.match(r?.stderr ?? '', new RegExp(`^warning: guest '${rooted}': static dac label`, 'm'), `round ${round}`);
      }
      const rows = JSON.parse(await svirtOk(dir, ['--json', 'audit'])) as AuditRow[];
      const defines = rows.filter((row) => row.op === 'define' && row.permission !== 'domain:static-privileged-label');
      const expected = Array.from({ length: ROUNDS }, (_, k) => [`plain${k}`, `rooted${k}`]).flat();
      assert.deepEqual(defines.map((row) => row.guest).sort(), expected.sort(), 'one define row per guest, naming it');
      const warned = rows.filter((row) => row.permission === 'domain:static-privileged-label');
      assert.deepEqual(
        warned.map((row) => row.guest).sort(),
        expected.filter((g) => g.startsWith('rooted')).sort(),
        'one warning row per privileged guest',
      );
    },
  );

  it('two creates at once each record the transient guest they started', { timeout: 240_000 }, async (t) => {
    const dir = scratch(t);
    const ROUNDS = 4;
    for (let round = 0; round < ROUNDS; round++) {
      const names = [`ta${round}`, `tb${round}`];
      const files = names.map((n) =>
        writeDomain(dir, n, domainXml(n, [{ path: makeImage(join(dir, `${n}.img`), 1), dev: 'vda' }])),
      );
      const results = await Promise.all(files.map((f) => svirt(dir, [...S, 'create', f, '--paused'])));
      for (const res of results) assert.equal(res.code, 0, res.stderr);
      for (const n of names) await svirtOk(dir, [...S, 'destroy', n]);
    }
    const rows = JSON.parse(await svirtOk(dir, ['--json', 'audit'])) as AuditRow[];
    const creates = rows.filter((row) => row.op === 'create');
    const expected = Array.from({ length: ROUNDS }, (_, k) => [`ta${k}`, `tb${k}`]).flat();
    assert.deepEqual(creates.map((row) => row.guest).sort(), expected.sort(), 'one create row per guest, naming it');
  });
});
