/**
 * svirt's launcher (native/svirt-launcher.c, built as native/out/svirt): the manager's
 * confined entry point (docs/confinement.md). On this host no LSM enforces anything, so
 * these check what the launcher itself does: it execs node on the package's bin/svirt.js
 * in place, passes argv and the exit status through, works through a symlink on PATH,
 * drops the variables that would load foreign code into the manager, refuses to run from
 * outside a package, and `svirt profile` reports how the manager was entered.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { nativeOutDir } from '../../src/host/native.js';
import { scratch } from '../helpers.js';

const LAUNCHER = join(nativeOutDir(), 'svirt');
const skip = existsSync(LAUNCHER) ? false : `no ${LAUNCHER}: run npm run build:native`;

function launch(file: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(file, args, { encoding: 'utf8', env, timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Manager {
  pid: number;
  noNewPrivs: boolean;
  entry: string | null;
  confined: boolean;
  selinux?: unknown;
  apparmor?: { profile: string; mode: string };
}

describe('svirt launcher (native/out/svirt)', { skip }, () => {
  it('runs the CLI with its arguments and passes its exit status through', (t) => {
    const dir = scratch(t);
    const ok = launch(LAUNCHER, ['--state-dir', dir, 'list', '--all']);
    assert.equal(ok.code, 0, ok.stderr);
    const usage = launch(LAUNCHER, ['--state-dir', dir, 'no such verb']);
    assert.equal(usage.code, 2, 'a usage error keeps its status');
    assert.match(usage.stderr, /unknown command 'no such verb'/, 'an argument with spaces arrives as one');
    const missing = launch(LAUNCHER, ['--state-dir', dir, 'dominfo', 'nope']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /nope/);
  });

  it('execs node in place: the manager has the launcher pid and says how it was entered', (t) => {
    const dir = scratch(t);
    const r = launch(LAUNCHER, ['--state-dir', dir, '--json', 'profile']);
    assert.equal(r.code, 0, r.stderr);
    const m = (JSON.parse(r.stdout) as { manager: Manager }).manager;
    assert.equal(m.entry, LAUNCHER);
    // no LSM enforces anything here: not confined, and saying so
    assert.equal(m.confined, false);
    const text = launch(LAUNCHER, ['--state-dir', dir, 'profile']);
    assert.match(text.stdout, /^# manager \(pid \d+\)$/m);
    assert.match(text.stdout, new RegExp(`^entry: ${LAUNCHER} \\(svirt's launcher\\)$`, 'm'));
    assert.match(text.stdout, /^confined: no /m);
    assert.match(text.stdout, /^no_new_privs: no$/m);
    // the CLI started some other way reports no entry
    const plain = spawnSync(
      process.execPath,
      [join(nativeOutDir(), '..', '..', 'bin', 'svirt.js'), '--state-dir', dir, '--json', 'profile'],
      {
        encoding: 'utf8',
      },
    );
    assert.equal((JSON.parse(plain.stdout) as { manager: Manager }).manager.entry, null);
  });

  it('works through a symlink on PATH (resolves its own package)', (t) => {
    const dir = scratch(t);
    const link = join(dir, 'svirt');
    symlinkSync(LAUNCHER, link);
    const r = launch('svirt', ['--state-dir', dir, '--json', 'profile'], {
      ...process.env,
      PATH: `${dir}:${process.env['PATH'] ?? ''}`,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { manager: Manager }).manager.entry, LAUNCHER);
  });

  it('drops NODE_OPTIONS and LD_PRELOAD: the caller cannot load code into the manager', (t) => {
    const dir = scratch(t);
    const env = {
      ...process.env,
      NODE_OPTIONS: `--require ${join(dir, 'nonexistent.js')}`,
      LD_PRELOAD: join(dir, 'nonexistent.so'),
    };
    // node itself fails on a --require it cannot find: the same call without the launcher shows it
    const direct = spawnSync(process.execPath, ['-e', '0'], { encoding: 'utf8', env });
    assert.notEqual(direct.status, 0, 'NODE_OPTIONS --require of a missing file stops node');
    const r = launch(LAUNCHER, ['--state-dir', dir, 'list'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /nonexistent\.js/);
    // ld.so tries LD_PRELOAD for the launcher itself (before its main; under SELinux the domain
    // transition's secure exec makes it ignore it), never again for node
    assert.equal(r.stderr.match(/nonexistent\.so/g)?.length ?? 0, 1, r.stderr);
  });

  it('refuses to run outside ROOT/native/out/ of a package', (t) => {
    const dir = scratch(t);
    const copy = join(dir, 'svirt');
    copyFileSync(LAUNCHER, copy);
    spawnSync('chmod', ['755', copy]);
    const r = launch(copy, ['list']);
    assert.equal(r.code, 127);
    assert.match(r.stderr, /is not ROOT\/native\/out\/NAME of an svirt package/);
  });
});
