import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { QmpClient } from '../../src/qemu/qmp-client.js';
import {
  countRows,
  domainXml,
  makeImage,
  owner,
  readRunning,
  scratch,
  svirt,
  svirtOk,
  writeDomain,
  qemuAsRootSkip,
} from '../helpers.js';

const skip = qemuAsRootSkip();
const S = ['--security-driver', 'dac,landlock'];

/** A qcow2 whose header names a host file as its backing file. */
function evilQcow2(path: string, backing: string): string {
  const r = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-F', 'raw', '-b', backing, path, '1M'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return path;
}

async function blockFiles(dir: string, name: string): Promise<string[]> {
  const row = readRunning(dir).find((r) => r.name === name);
  const q = await QmpClient.connect(join(dir, 'run', 'monitor', `${row?.uuid ?? ''}.sock`));
  try {
    const nodes = (await q.execute('query-named-block-nodes')) as { file: string; drv: string }[];
    return nodes.map((n) => `${n.drv}:${n.file}`);
  } finally {
    q.close();
  }
}

describe('image formats are declared, never probed (real QEMU)', { skip }, () => {
  it('a qcow2 image declared raw is raw: its backing file name is never opened', async (t) => {
    const dir = scratch(t);
    const img = evilQcow2(join(dir, 'looks-like-qcow2.img'), '/etc/shadow');
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'raw', domainXml('raw', [{ path: img, dev: 'vda', format: 'raw' }]))]);
    await svirtOk(dir, [...S, 'start', 'raw', '--paused']);
    const files = await blockFiles(dir, 'raw');
    assert.ok(
      files.every((f) => !f.includes('shadow')),
      files.join(' '),
    );
    assert.deepEqual(files.map((f) => f.split(':')[0]).sort(), ['file', 'raw']);
  });

  it('a qcow2 declared without a backing chain gets none, whatever its header says', async (t) => {
    const dir = scratch(t);
    const img = evilQcow2(join(dir, 'no-chain.qcow2'), '/etc/shadow');
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'q', domainXml('q', [{ path: img, dev: 'vda', format: 'qcow2' }]))]);
    await svirtOk(dir, [...S, 'start', 'q', '--paused']);
    const files = await blockFiles(dir, 'q');
    assert.ok(
      files.every((f) => !f.includes('shadow')),
      files.join(' '),
    );
  });

  it('a raw file declared qcow2 makes QEMU exit during start: a clear error, nothing left behind', async (t) => {
    const dir = scratch(t);
    const img = makeImage(join(dir, 'plain.img'), 1, { uid: 1000, gid: 1000 }, 0o644);
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'bad', domainXml('bad', [{ path: img, dev: 'vda', format: 'qcow2' }]))]);
    const t0 = Date.now();
    const r = await svirt(dir, [...S, 'start', 'bad', '--paused']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: QEMU exited during start \(exit 1\): .*qcow2/m);
    // QEMU accepted the monitor connection and exited: the greeting wait ends with it, not at
    // the 30 s start timeout (issue 12 item 11: 30.3 s before). A bound, not a speed target.
    assert.ok(Date.now() - t0 < 20_000, `the failed start took ${Date.now() - t0} ms`);
    assert.equal(countRows(dir, 'running'), 0);
    assert.equal(countRows(dir, 'reservations'), 0);
    assert.deepEqual(owner(img), { uid: 1000, gid: 1000, mode: 0o644 });
  });
});
