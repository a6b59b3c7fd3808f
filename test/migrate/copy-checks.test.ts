import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, truncateSync } from 'node:fs';
import { describe, it } from 'node:test';
import { tempDir } from '../helpers.js';
import { hostsSkip, makeHosts, type TestHost } from '../support/hosts.js';
import { Steps, LIVE } from './steps.js';
import { assertRunsOn, traces } from './support.js';
import { copyXml, holds, imagePath, makeSourceImage, ownerOf, run, QEMU_IMG } from './copy-support.js';

const NON_SHARED_DISK = 64;

/**
 * Connections from `from`'s namespace to HOST:PORT: `wrong` send 32 bytes that are not the
 * token, `long` send 40 bytes, `silent` send nothing. Resolves with how many the other end
 * closed within 8 s, and how many could not connect at all.
 */
function strangers(
  from: TestHost,
  host: string,
  port: number,
  wrong: number,
  long: number,
  silent: number,
): { closed: number; refused: number } {
  const script = `
    const net = require('node:net');
    const [host, port, wrong, long, silent] = process.argv.slice(1);
    const total = +wrong + +long + +silent;
    let closed = 0, refused = 0, done = 0;
    const end = () => { console.log(JSON.stringify({ closed, refused })); process.exit(0); };
    for (let i = 0; i < total; i++) {
      const s = net.connect(+port, host);
      s.on('connect', () => { if (i < +wrong) s.write(Buffer.alloc(32, 7)); else if (i < +wrong + +long) s.write(Buffer.alloc(40, 7)); });
      s.on('error', (e) => { if (e.code === 'ECONNREFUSED') refused++; });
      s.on('close', () => { if (!s.bytesRead) closed++; if (++done === total) end(); });
    }
    setTimeout(end, 8000);`;
  const r = spawnSync(
    'nsenter',
    [
      `--net=/run/netns/${from.ns}`,
      '--',
      process.execPath,
      '-e',
      script,
      host,
      String(port),
      String(wrong),
      String(long),
      String(silent),
    ],
    { encoding: 'utf8', timeout: 20_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim()) as { closed: number; refused: number };
  return { closed: out.closed - out.refused, refused: out.refused };
}

describe('--copy-storage-all: what is refused, and who reaches the export', { skip: hostsSkip() }, () => {
  it('refuses the source own file, a wrong-sized image, --paused and --copy-storage-inc; the source runs on, the destination keeps nothing', async (t) => {
    const [h1, h2] = makeHosts(t, 2);
    assert.ok(h1 && h2);
    await Promise.all([h1.serve(), h2.serve()]);
    const dir = tempDir(t, 'svirt-copycheck-');
    const src = imagePath(dir, h1, 'raw');
    const dst = imagePath(dir, h2, 'raw');
    makeSourceImage(src, 'raw');
    const x1 = copyXml(undefined, dir, src, 'raw', h1);
    const x2 = copyXml(undefined, dir, dst, 'raw', h2);
    // The source's own file named on the destination (the hosts do share this storage).
    const same = copyXml(undefined, dir, src, 'raw', h2, 'same');
    await h1.svirtOk(['define', x1]);
    await h1.svirtOk(['start', 'mig']);
    const before = await assertRunsOn(h1, src);
    const expectRefused = async (args: readonly string[], re: RegExp): Promise<void> => {
      const r = await h1.svirt(['migrate', '--live', ...args, 'mig', h2.uri]);
      assert.notEqual(r.code, 0, `refused: ${args.join(' ')}`);
      assert.match(r.stderr, re);
      const now = await assertRunsOn(h1, src);
      assert.equal(now.pid, before.pid, 'the source runs on in the same QEMU');
      assert.deepEqual(traces(h2), { running: 0, reserved: 0, remembered: 0 }, 'the destination keeps nothing');
    };
    await expectRefused(['--copy-storage-all', '--xml', same], /is the source's own image/);
    run(QEMU_IMG, ['create', '-q', '-f', 'raw', dst, '16M']);
    const st = statSync(dst);
    await expectRefused(['--copy-storage-all', '--xml', x2], /holds 16777216 bytes, the source's disk vda 33554432/);
    const after = statSync(dst);
    assert.deepEqual(
      [after.ino, after.size, after.uid, after.mode],
      [st.ino, st.size, st.uid, st.mode],
      'an existing image is left as it was',
    );
    truncateSync(dst, 0);
    await expectRefused(['--copy-storage-all', '--paused', '--xml', x2], /--paused together are not supported/);
    await expectRefused(['--copy-storage-inc', '--xml', x2], /--copy-storage-inc is not supported/);
    assert.equal(statSync(dst).size, 0, 'the existing file was not written');
  });

  it('the export admits only the token: strangers are cut, the copy goes through, the listener is closed after', async (t) => {
    const [h1, h2, h3] = makeHosts(t, 3);
    assert.ok(h1 && h2 && h3);
    await Promise.all([h1.serve(), h2.serve()]);
    const dir = tempDir(t, 'svirt-copytoken-');
    const src = imagePath(dir, h1, 'qcow2');
    const dst = imagePath(dir, h2, 'qcow2');
    makeSourceImage(src, 'qcow2');
    await h1.svirtOk(['define', copyXml(undefined, dir, src, 'qcow2', h1)]);
    await h1.svirtOk(['start', 'mig']);
    const steps = await Steps.open(await h1.serve(), await h2.serve(), LIVE | NON_SHARED_DISK);
    t.after(() => steps.close());
    await steps.begin();
    await steps.prepare(readFileSync(copyXml(undefined, dir, dst, 'qcow2', h2), 'utf8'));
    const nbd = (steps.cookieJson['copy'] as { nbd?: { port: number } }).nbd;
    assert.ok(nbd && nbd.port > 0, 'Prepare says where the export listens');
    // A third host on the LAN: wrong tokens, too long a greeting, silence. All are cut, none reaches QEMU.
    const s = strangers(h3, h2.addr, nbd.port, 6, 3, 3);
    assert.deepEqual(s, { closed: 12, refused: 0 }, 'every stranger was cut unanswered');
    await steps.perform();
    await steps.finish(false);
    await steps.confirm(false);
    await assertRunsOn(h2, dst);
    assert.ok(holds(dst, 'qcow2', 0x5a, '0', '1M'), 'the source copied its disk through the same export');
    assert.deepEqual(traces(h1), { running: 0, reserved: 0, remembered: 0 });
    assert.deepEqual(ownerOf(src).uid, 4242);
    const later = strangers(h3, h2.addr, nbd.port, 1, 0, 0);
    assert.equal(later.refused, 1, 'the export listener is closed once the copy is done');
  });
});
