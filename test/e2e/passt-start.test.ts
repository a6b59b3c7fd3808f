/**
 * passt starts beside QEMU (svirt spawns it, launches QEMU, then waits for passt's sandbox),
 * so a passt that fails has to be caught after QEMU already runs. In a network namespace with
 * only `lo` passt exits at once ("External interface not usable"): the start must fail with
 * passt's own words, and leave no QEMU, no passt, no record, no reservation and the image's
 * owner as it was.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { countRows, domainXml, makeImage, owner, qemuAsRootSkip, scratch, waitFor, writeDomain } from '../helpers.js';
import { netns, netnsSkip, nsProcesses, svirtIn } from '../support/netns.js';

const skip = qemuAsRootSkip() || netnsSkip() || (existsSync('/usr/bin/passt') ? false : 'passt is not installed');

describe('a passt that fails while QEMU starts beside it', { skip }, () => {
  it('fails the start with passt’s message and leaves nothing behind', async (t) => {
    const dir = scratch(t);
    const ns = netns(t);
    const image = makeImage(join(dir, 'disk.img'));
    const before = owner(image);
    const nic = `<interface type='user'><backend type='passt'/><model type='virtio'/></interface>`;
    const xml = writeDomain(
      dir,
      'lonely',
      domainXml('lonely', [{ path: image, dev: 'vda' }]).replace('</devices>', `${nic}</devices>`),
    );
    for (const stack of ['dac,landlock', 'landlock']) {
      const S = ['--security-driver', stack];
      const def = await svirtIn(ns, dir, [...S, 'define', xml]);
      assert.equal(def.code, 0, def.stderr);
      const r = await svirtIn(ns, dir, [...S, 'start', 'lonely', '--paused']);
      assert.notEqual(r.code, 0, `${stack}: the start must fail: ${r.stdout}`);
      assert.match(r.stderr, /passt helper passt-net0 of 'lonely' exited during start.*(External interface not usable|routable)/);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${stack}: one line: ${r.stderr}`);
      // QEMU was killed by the undo; its monitor ends once its reconcile hook has run.
      const left = () => nsProcesses(ns).filter((p) => /qemu|passt/.test(p.args));
      await waitFor(() => left().length === 0, 15_000);
      assert.deepEqual(left(), [], `${stack}: no QEMU, monitor or passt left in the namespace`);
      assert.equal(countRows(dir, 'running'), 0, stack);
      assert.equal(countRows(dir, 'reservations'), 0, stack);
      assert.deepEqual(owner(image), before, `${stack}: the image's owner is back`);
      assert.equal((await svirtIn(ns, dir, [...S, 'undefine', 'lonely'])).code, 0);
    }
  });
});
