import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ATTACKS, runMatrix, type MatrixResult } from '../../src/attacks/matrix.js';
import { landlockAbi } from '../../src/host/native.js';
import { SVIRT_BIN, domainXml, haveQemu, isRoot, scratch, svirt, writeDomain } from '../helpers.js';

function landlockReason(): string | false {
  try {
    return landlockAbi() >= 6 ? false : 'the kernel Landlock ABI is below 6 (no signal/abstract socket scoping)';
  } catch (err) {
    return `the kernel has no Landlock (${(err as NodeJS.ErrnoException).code})`;
  }
}

const skip = !haveQemu() ? 'qemu-system-x86_64 is not installed' : landlockReason();

function deniedAll(m: MatrixResult, stack: string): void {
  for (const row of m.rows) {
    const cell = row.cells[stack];
    assert.equal(cell?.result, 'denied', `${stack}: ${row.title} → ${cell?.result} (${cell?.detail})`);
  }
  assert.equal(m.ownDisk[stack]?.result, 'allowed', `${stack}: A's own disk I/O works (${m.ownDisk[stack]?.detail})`);
}

describe('attack matrix (real QEMU, real kernel)', { skip }, () => {
  it(
    'denies every attack under the default root stack, and shows them succeeding under none',
    { skip: isRoot() ? false : 'needs root for the dac stacks' },
    async (t) => {
      const work = mkdtempSync(join(tmpdir(), 'svirt-matrix-'));
      chmodSync(work, 0o711);
      t.after(() => rmSync(work, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 }));
      const m = await runMatrix({ stacks: ['none', 'dac', 'landlock', 'dac,landlock'], workDir: work });
      assert.equal(m.rows.length, ATTACKS.length);
      deniedAll(m, 'dac,landlock');
      deniedAll(m, 'landlock');
      const allowedUnderNone = m.rows.filter((r) => r.cells['none']?.result === 'allowed').map((r) => r.id);
      for (const id of [
        'disk-b-rw',
        'disk-b-ro',
        'nvram-b',
        'tpm-state-b',
        'share-b',
        'shadow',
        'write-etc',
        'qmp-b',
        'pty-b',
        'tcp',
        'signal-b',
        'device-node',
      ]) {
        assert.ok(
          allowedUnderNone.includes(id),
          `under none, ${id} succeeds (the matrix can fail): ${allowedUnderNone.join(',')}`,
        );
      }
      // dac alone: the shared-uid attacks fail, what DAC cannot see (TCP, a world-writable dir) does not.
      for (const id of [
        'disk-b-rw',
        'disk-b-ro',
        'nvram-b',
        'tpm-state-b',
        'share-b',
        'shadow',
        'write-etc',
        'qmp-b',
        'pty-b',
        'signal-b',
        'environ-b',
      ]) {
        assert.equal(m.rows.find((r) => r.id === id)?.cells['dac']?.result, 'denied', `dac denies ${id}`);
      }
      assert.equal(m.rows.find((r) => r.id === 'tcp')?.cells['dac']?.result, 'allowed', 'dac alone cannot stop TCP');
      // A's own device node: DAC and Landlock let A open it; the cgroup's device list alone refuses it (EPERM)
      const node = m.rows.find((r) => r.id === 'device-node');
      for (const stack of ['dac', 'landlock', 'dac,landlock'])
        assert.equal(node?.cells[stack]?.detail, 'EPERM', `${stack}: the cgroup denies`);
    },
  );

  it(
    'denies every attack as a non-root user (session mode: landlock alone)',
    { skip: isRoot() ? false : 'needs root to create the test user' },
    (t) => {
      const user = 'svirt-test';
      if (spawnSync('id', [user]).status !== 0) {
        const r = spawnSync('useradd', ['--create-home', '--shell', '/bin/sh', user], { encoding: 'utf8' });
        assert.equal(r.status, 0, `useradd: ${r.stderr}`);
      }
      const uid = spawnSync('id', ['-u', user], { encoding: 'utf8' }).stdout.trim();
      if (spawnSync('su', [user, '-s', '/bin/sh', '-c', `test -r ${SVIRT_BIN}`]).status !== 0) {
        t.skip(`the checkout (${SVIRT_BIN}) is not readable by the test user ${user}`);
        return;
      }
      const runtime = `/tmp/svirt-test-xdg-${uid}`;
      const r = spawnSync(
        'su',
        [
          user,
          '-s',
          '/bin/sh',
          '-c',
          `XDG_RUNTIME_DIR=${runtime} XDG_DATA_HOME=${runtime}/data exec ${process.execPath} ${SVIRT_BIN} --json demo`,
        ],
        { encoding: 'utf8', cwd: '/tmp', timeout: 180_000 },
      );
      rmSync(runtime, { recursive: true, force: true });
      assert.equal(r.status, 0, `demo as ${user} failed: ${r.stderr}`);
      const m = JSON.parse(r.stdout) as MatrixResult & { isolated: boolean; strongest: string };
      assert.deepEqual(m.stacks, ['none', 'landlock']);
      assert.equal(m.isolated, true);
      deniedAll(m, 'landlock');
      assert.ok(
        m.rows.some((row) => row.cells['none']?.result === 'allowed'),
        'something succeeds under none',
      );
    },
  );

  it("fails to start, naming the step, when best effort is off and the kernel's ABI is too old for the ruleset", async (t) => {
    const dir = scratch(t);
    const file = writeDomain(dir, 'strict', domainXml('strict', []));
    const env = { SVIRT_LANDLOCK_BEST_EFFORT: '0', SVIRT_LANDLOCK_REQUIRE_ABI: String(landlockAbi() + 1) };
    const r = await svirt(dir, ['--security-driver', 'landlock', 'create', file, '--paused'], env);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^error: confinement step 'landlock' failed: .*needs ABI \d+, kernel has \d+/m);
    const ok = await svirt(dir, ['--security-driver', 'landlock', 'create', file, '--paused'], {
      SVIRT_LANDLOCK_BEST_EFFORT: '0',
    });
    assert.equal(ok.code, 0, ok.stderr);
  });
});
