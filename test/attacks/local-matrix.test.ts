/**
 * The second matrix (issue 12): `svirt demo --local` run for real, as root (the local user and
 * the guest act with their own uids) and as a non-root user (the rows a session can run).
 * Every cell of every stack that runs here must hold; a row listed in FINDINGS is an open
 * security finding: it is asserted in a todo test of its own, so it shows, and fails, there.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOCAL_ATTACKS } from '../../src/attacks/local-attacks.js';
import type { LocalMatrixResult } from '../../src/attacks/local-matrix.js';
import { SVIRT_BIN, haveQemu, isRoot, svirt } from '../helpers.js';

type Printed = LocalMatrixResult & { strongest: string; held: boolean };

/** Rows that do not hold today, each a security finding reported with its reproduction. */
const FINDINGS: Readonly<Record<string, string>> = {};

const ROOT_STACKS = ['dac', 'landlock', 'selinux,dac,landlock', 'apparmor,dac,landlock', 'dac,landlock'];

const skip = !haveQemu() ? 'qemu-system-x86_64 is not installed' : false;

function cellsNotHeld(m: LocalMatrixResult, ids: (id: string) => boolean): string[] {
  return m.rows
    .filter((r) => ids(r.id))
    .flatMap((r) =>
      m.stacks
        .filter((s) => r.cells[s]?.result !== 'held' && r.cells[s]?.result !== 'skipped')
        .map((s) => `${r.id} under ${s}: ${r.cells[s]?.result}: ${r.cells[s]?.detail}`),
    );
}

describe('local attack matrix as root: svirt demo --local (real QEMU, real uids)', { skip, timeout: 600_000 }, () => {
  const rootSkip = isRoot() ? false : 'needs root: the local user and the guests act as other uids (setpriv)';
  let m: Printed;
  let code: number;

  // demo makes its own scratch dirs; the state dir is only what the CLI helper passes.
  const dir = mkdtempSync(join(tmpdir(), 'svirt-local-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  before(async () => {
    if (rootSkip) return;
    const r = await svirt(dir, ['--json', 'demo', '--local']);
    code = r.code;
    assert.doesNotThrow(() => (m = JSON.parse(r.stdout) as Printed), `one JSON document on stdout: ${r.stderr}`);
  });

  it('runs every row under every default root stack (selinux and apparmor in their userspace modes)', { skip: rootSkip }, () => {
    assert.deepEqual(m.stacks, ROOT_STACKS, 'the stack auto picks here (dac,landlock) goes last');
    assert.deepEqual(
      m.rows.map((r) => r.id),
      LOCAL_ATTACKS.map((a) => a.id),
    );
    for (const r of m.rows) {
      for (const s of m.stacks)
        assert.equal(r.cells[s]?.result === 'skipped', false, `${r.id} under ${s} ran: ${r.cells[s]?.detail}`);
    }
    assert.match(m.notes['selinux,dac,landlock'] ?? '', /userspace-test/);
    assert.match(m.notes['apparmor,dac,landlock'] ?? '', /compile-only/);
  });

  it('holds every attack on svirt itself under every stack', { skip: rootSkip }, () => {
    assert.deepEqual(
      cellsNotHeld(m, (id) => !(id in FINDINGS)),
      [],
    );
  });

  for (const [id, finding] of Object.entries(FINDINGS)) {
    it(`holds ${id} under every stack`, { skip: rootSkip, todo: finding }, () => {
      assert.deepEqual(
        cellsNotHeld(m, (r) => r === id),
        [],
      );
    });
  }

  it('exits non-zero exactly when a cell of the strongest stack did not hold', { skip: rootSkip }, () => {
    const bad = m.rows.filter((r) => r.cells[m.strongest]?.result !== 'held');
    assert.equal(m.strongest, 'dac,landlock');
    assert.equal(m.held, bad.length === 0);
    assert.equal(code, bad.length === 0 ? 0 : 1);
  });

  it('prints the table, each stack a column, and the verdict', { skip: rootSkip }, async () => {
    const r = await svirt(dir, ['demo', '--local', '--stacks', 'dac;dac,landlock', '--rows', 'restore-fifo,define-dev-zero']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\| attack on svirt itself \(local user uid \d+, or guest A\) \| dac \| dac,landlock \|$/m);
    assert.match(r.stdout, /^\| restore from, or save over, a FIFO the user made \(answered at once\) \| held \| held \|$/m);
    assert.match(r.stdout, /^\| define \/dev\/zero, .* \| held \| held \|$/m);
    assert.match(
      r.stdout,
      /^- restore-fifo: held: restore refused in \d+ ms, save in \d+ ms \(a missing file: \d+ ms\): cannot use ".*state\.save" as save file: it is a FIFO/m,
    );
    assert.match(r.stdout, /^dac,landlock: every attack on svirt itself held\.$/m);
  });
});

describe('local attack matrix as a non-root user (session: landlock)', { skip, timeout: 120_000 }, () => {
  it(
    'holds the rows a user can run against their own svirt',
    { skip: isRoot() ? false : 'needs root to create the test user' },
    (t) => {
      const user = 'svirt-test';
      if (spawnSync('id', [user]).status !== 0) {
        const r = spawnSync('useradd', ['--create-home', '--shell', '/bin/sh', user], { encoding: 'utf8' });
        assert.equal(r.status, 0, `useradd: ${r.stderr}`);
      }
      if (spawnSync('su', [user, '-s', '/bin/sh', '-c', `test -r ${SVIRT_BIN}`]).status !== 0) {
        t.skip(`the checkout (${SVIRT_BIN}) is not readable by the test user ${user}`);
        return;
      }
      const uid = spawnSync('id', ['-u', user], { encoding: 'utf8' }).stdout.trim();
      const runtime = `/tmp/svirt-test-xdg-local-${uid}`;
      t.after(() => rmSync(runtime, { recursive: true, force: true }));
      const r = spawnSync(
        'su',
        [user, '-s', '/bin/sh', '-c', `XDG_RUNTIME_DIR=${runtime} exec ${process.execPath} ${SVIRT_BIN} --json demo --local`],
        { encoding: 'utf8', cwd: '/tmp', timeout: 100_000 },
      );
      assert.equal(r.status, 0, `demo --local as ${user}: ${r.stderr}`);
      const m = JSON.parse(r.stdout) as Printed;
      assert.deepEqual(m.stacks, ['landlock']);
      const ran = m.rows.filter((row) => row.cells['landlock']?.result !== 'skipped').map((row) => row.id);
      assert.deepEqual(
        ran,
        LOCAL_ATTACKS.filter((a) => !a.rootOnly).map((a) => a.id),
      );
      assert.deepEqual(
        cellsNotHeld(m, () => true),
        [],
      );
      for (const row of m.rows.filter((x) => !ran.includes(x.id))) {
        assert.match(row.cells['landlock']?.detail ?? '', /needs root/, `${row.id} says why it was skipped`);
      }
    },
  );
});
