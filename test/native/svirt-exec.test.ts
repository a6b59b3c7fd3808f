import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { landlockAbi, svirtExecPath } from '../../src/host/native.js';
import type { ConfinementSpec, LandlockFsAccess, LandlockSpec } from '../../src/security/confinement.js';
import { fsRightsForAbi, LATEST_ABI } from '../../src/security/landlock/abi.js';
import { tempDir } from '../helpers.js';
import { SYSTEM_RULES, twoOpenFds } from './fixtures.js';

const isRoot = process.getuid?.() === 0;
const ALL_FS: readonly LandlockFsAccess[] = fsRightsForAbi(LATEST_ABI);

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

interface RunOptions {
  /** Opened fds given to svirt-exec as fds 4, 5, ... */
  readonly extraFds?: readonly number[];
  readonly uid?: number;
  readonly gid?: number;
  readonly env?: NodeJS.ProcessEnv;
}

type Cleanup = { after(fn: () => void): void };

function baseSpec(extra: Partial<ConfinementSpec> = {}): ConfinementSpec {
  return { version: 1, rlimits: [], noNewPrivs: true, keepFds: [], ...extra };
}

function landlock(extra: Partial<LandlockSpec>): LandlockSpec {
  return {
    handledFs: [],
    handledNet: [],
    scoped: [],
    pathRules: [],
    netRules: [],
    bestEffort: false,
    logNewExec: false,
    ...extra,
  };
}

/** Runs svirt-exec with the spec (object or raw text) on fd 3. */
function runExec(t: Cleanup, spec: ConfinementSpec | string, argv: readonly string[], opts: RunOptions = {}): Run {
  const file = join(tempDir(t, 'svirt-exec-'), 'spec.json');
  writeFileSync(file, typeof spec === 'string' ? spec : JSON.stringify(spec));
  const specFd = openSync(file, 'r');
  try {
    const r = spawnSync(svirtExecPath(), ['--spec-fd', '3', '--', ...argv], {
      stdio: ['ignore', 'pipe', 'pipe', specFd, ...(opts.extraFds ?? [])],
      encoding: 'utf8',
      cwd: '/',
      timeout: 20_000,
      ...(opts.uid === undefined ? {} : { uid: opts.uid }),
      ...(opts.gid === undefined ? {} : { gid: opts.gid }),
      ...(opts.env === undefined ? {} : { env: opts.env }),
    });
    if (r.error) throw r.error;
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    closeSync(specFd);
  }
}

/** Asserts a step failed: its status, exactly one stderr line matching, and the marker program never ran. */
function assertStepFails(t: Cleanup, spec: ConfinementSpec | string, status: number, line: RegExp, opts: RunOptions = {}): void {
  const marker = join(tempDir(t, 'svirt-exec-'), 'marker');
  const r = runExec(t, spec, ['/bin/sh', '-c', `touch ${marker}`], opts);
  assert.equal(r.status, status, r.stderr);
  assert.match(r.stderr, /^svirt-exec: [a-z]+: .+: .+\n$/);
  assert.match(r.stderr, line);
  assert.equal(r.stderr.split('\n').length, 2, `one line: ${r.stderr}`);
  assert.equal(existsSync(marker), false, 'the program must not run');
}

describe('svirt-exec', () => {
  it('--probe prints the Landlock ABI (7 on this host) and userns support as JSON', () => {
    const r = spawnSync(svirtExecPath(), ['--probe'], { encoding: 'utf8' });
    assert.equal(r.status, 0);
    assert.equal(r.stdout.split('\n').length, 2);
    const probe = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(probe), ['landlockAbi', 'landlockError', 'userns']);
    assert.equal(probe['landlockAbi'], landlockAbi());
    assert.equal(probe['landlockAbi'], 7, 'this host runs Landlock ABI 7');
    assert.equal(probe['landlockError'], null);
    assert.equal(typeof probe['userns'], 'boolean');
  });

  it('runs the program with its arguments, the environment as is and no_new_privs set', (t) => {
    const r = runExec(
      t,
      baseSpec(),
      ['/bin/sh', '-c', 'echo "$0 $1 $SVIRT_T"; grep NoNewPrivs /proc/self/status', 'zero', 'one'],
      {
        env: { ...process.env, SVIRT_T: 'kept' },
      },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'zero one kept\nNoNewPrivs:\t1\n');
    const off = runExec(t, baseSpec({ noNewPrivs: false }), ['/bin/grep', 'NoNewPrivs', '/proc/self/status']);
    assert.equal(off.stdout, 'NoNewPrivs:\t0\n');
  });

  describe('spec (201)', () => {
    const cases: readonly [string, string, RegExp][] = [
      ['malformed JSON', '{"version":1,', /^svirt-exec: spec: JSON: /],
      ['an unknown top-level key', JSON.stringify({ ...baseSpec(), qemu: 1 }), /unknown key "qemu"/],
      ['a missing required key', '{"version":1,"rlimits":[],"keepFds":[]}', /missing key "noNewPrivs"/],
      ['a wrong version', JSON.stringify({ ...baseSpec(), version: 2 }), /version: 2 is out of range/],
      ['a type error', JSON.stringify({ ...baseSpec(), uid: '0', gid: 0 }), /uid: expected integer, got string/],
      ['uid without gid', JSON.stringify({ ...baseSpec(), uid: 5 }), /uid and gid must be given together/],
      ['uid -1', JSON.stringify({ ...baseSpec(), uid: 4294967295, gid: 0 }), /out of range/],
      ['a fraction', JSON.stringify({ ...baseSpec(), keepFds: [3.5] }), /only plain integers/],
      [
        'an unknown landlock access name',
        JSON.stringify(baseSpec({ landlock: landlock({ handledFs: ['read_file'] }) })).replace(
          '"read_file"',
          '"read_everything"',
        ),
        /landlock.handledFs\[0\]: unknown name "read_everything"/,
      ],
      [
        'an unknown rlimit',
        JSON.stringify({ ...baseSpec(), rlimits: [{ resource: 'cpu', soft: 1, hard: 1 }] }),
        /unknown resource "cpu"/,
      ],
      [
        'keep outside hide',
        JSON.stringify(baseSpec({ mountView: { hide: '/run/svirt', keep: '/run/other', userns: false } })),
        /is not beneath/,
      ],
      [
        'a non-normalized path',
        JSON.stringify(baseSpec({ mountView: { hide: '/run/svirt', keep: '/run/svirt/../x', userns: false } })),
        /not a normalized path/,
      ],
      ['a duplicate key', '{"version":1,"version":1,"rlimits":[],"noNewPrivs":true,"keepFds":[]}', /duplicate key "version"/],
      ['a NUL in a string', JSON.stringify({ ...baseSpec(), selinuxExecLabel: 'a\u0000b' }), /NUL in string/],
      ['trailing data', `${JSON.stringify(baseSpec())} {}`, /trailing data/],
    ];
    for (const [what, text, line] of cases) {
      it(`rejects ${what}`, (t) => assertStepFails(t, text, 201, line));
    }

    it('rejects a bad command line', () => {
      const r = spawnSync(svirtExecPath(), ['--spec-fd', '3', '/bin/true'], { encoding: 'utf8' });
      assert.equal(r.status, 201);
      assert.match(r.stderr, /^svirt-exec: spec: usage: /);
    });

    it('rejects an unreadable spec fd', () => {
      const r = spawnSync(svirtExecPath(), ['--spec-fd', '9', '--', '/bin/true'], { encoding: 'utf8' });
      assert.equal(r.status, 201);
      assert.equal(r.stderr, 'svirt-exec: spec: read fd 9: Bad file descriptor\n');
    });
  });

  it('fails rlimits with 202 (soft above hard)', (t) => {
    assertStepFails(
      t,
      baseSpec({ rlimits: [{ resource: 'nofile', soft: 100, hard: 50 }] }),
      202,
      /^svirt-exec: rlimits: setrlimit nofile: Invalid argument$/m,
    );
  });

  it('applies rlimits (-1 is unlimited)', (t) => {
    const spec = baseSpec({
      rlimits: [
        { resource: 'nofile', soft: 64, hard: 128 },
        { resource: 'core', soft: 0, hard: 0 },
        { resource: 'fsize', soft: -1, hard: -1 },
      ],
    });
    const r = runExec(t, spec, ['/bin/sh', '-c', 'ulimit -n; ulimit -Hn; ulimit -c; ulimit -f']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '64\n128\n0\nunlimited\n');
  });

  describe('mount view', () => {
    function layout(t: Cleanup): { root: string; keep: string } {
      const root = tempDir(t, 'svirt-exec-');
      mkdirSync(join(root, 'guests', 'a'), { recursive: true });
      mkdirSync(join(root, 'guests', 'b'), { recursive: true });
      writeFileSync(join(root, 'guests', 'a', 'monitor.sock'), 'a');
      writeFileSync(join(root, 'guests', 'b', 'monitor.sock'), 'b');
      writeFileSync(join(root, 'state.db'), 's');
      return { root, keep: join(root, 'guests', 'a') };
    }

    for (const userns of [false, true]) {
      it(`hides every sibling of the kept dir (userns ${String(userns)})`, { skip: !isRoot && !userns && 'needs root' }, (t) => {
        const { root, keep } = layout(t);
        const script = `ls -A ${root}; ls -A ${root}/guests; cat ${keep}/monitor.sock; echo; echo new > ${keep}/written; cat ${root}/guests/b/monitor.sock`;
        const r = runExec(t, baseSpec({ mountView: { hide: root, keep, userns } }), ['/bin/sh', '-c', script]);
        assert.equal(r.stdout, 'guests\na\na\n');
        assert.match(r.stderr, /guests\/b\/monitor.sock: No such file or directory/);
        assert.notEqual(r.status, 0);
        // the kept dir is the real one (writes land on the host) and the host view is untouched
        assert.equal(readFileSync(join(keep, 'written'), 'utf8'), 'new\n');
        assert.equal(readFileSync(join(root, 'guests', 'b', 'monitor.sock'), 'utf8'), 'b');
      });
    }

    it('fails with 203 when the kept dir is missing', (t) => {
      const root = tempDir(t, 'svirt-exec-');
      assertStepFails(
        t,
        baseSpec({ mountView: { hide: root, keep: join(root, 'nope'), userns: false } }),
        203,
        new RegExp(`^svirt-exec: mountview: open "${root}/nope": No such file or directory$`, 'm'),
      );
    });
  });

  describe('ids', () => {
    it('runs as the target uid/gid with no groups and no capabilities', { skip: !isRoot && 'needs root' }, (t) => {
      const spec = baseSpec({ uid: 900123, gid: 900123, groups: [] });
      const r = runExec(t, spec, [
        '/bin/sh',
        '-c',
        'id -u; id -g; id -G; grep -E "^(Uid|Gid|Groups|CapPrm|CapEff|CapAmb):" /proc/self/status',
      ]);
      assert.equal(r.status, 0, r.stderr);
      // the kernel ends an empty Groups: line with a space
      assert.equal(
        r.stdout.replace(/[ \t]+$/gm, ''),
        [
          '900123',
          '900123',
          '900123',
          'Uid:\t900123\t900123\t900123\t900123',
          'Gid:\t900123\t900123\t900123\t900123',
          'Groups:',
          'CapPrm:\t0000000000000000',
          'CapEff:\t0000000000000000',
          'CapAmb:\t0000000000000000',
          '',
        ].join('\n'),
      );
    });

    it(
      'fails with 204 when an unprivileged caller asks for uid 0',
      { skip: !isRoot && 'needs root to start the unprivileged caller' },
      (t) => {
        assertStepFails(
          t,
          baseSpec({ uid: 0, gid: 0, groups: [] }),
          204,
          /^svirt-exec: ids: setgroups \(0 groups\): Operation not permitted$/m,
          { uid: 900124, gid: 900124 },
        );
      },
    );
  });

  it(
    'fails with 205 when PR_SET_NO_NEW_PRIVS fails',
    { skip: 'prctl(PR_SET_NO_NEW_PRIVS) cannot fail on Linux >= 3.5; the flag being set is checked above' },
    () => {},
  );

  it('fails with 206 when the SELinux exec label cannot be set', (t) => {
    assertStepFails(
      t,
      baseSpec({ selinuxExecLabel: 'svirt_no_such_user:svirt_no_such_role:svirt_t:s0' }),
      206,
      /^svirt-exec: selinux: write "svirt_no_such_user:svirt_no_such_role:svirt_t:s0" to \/proc\/thread-self\/attr\/exec: /m,
    );
  });

  it(
    'fails with 207 when the AppArmor profile cannot be set',
    {
      skip:
        existsSync('/sys/module/apparmor/parameters/enabled') &&
        readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').startsWith('Y') &&
        'AppArmor is enabled: an unknown profile is accepted at write time',
    },
    (t) => {
      assertStepFails(
        t,
        baseSpec({ apparmorProfile: 'svirt-00000000-0000-0000-0000-000000000000' }),
        207,
        /^svirt-exec: apparmor: write "exec svirt-00000000-0000-0000-0000-000000000000" to \/proc\/thread-self\/attr\/(apparmor\/)?exec: /m,
      );
    },
  );

  describe('landlock', () => {
    it('fails with 208 naming a missing path, and skips it when optional', (t) => {
      const missing = join(tempDir(t, 'svirt-exec-'), 'not-there');
      const rules = (optional: boolean) =>
        landlock({ handledFs: ALL_FS, pathRules: [...SYSTEM_RULES, { path: missing, access: ['read_file'], optional }] });
      assertStepFails(
        t,
        baseSpec({ landlock: rules(false) }),
        208,
        new RegExp(`^svirt-exec: landlock: add rule "${missing}": No such file or directory$`, 'm'),
      );
      const r = runExec(t, baseSpec({ landlock: rules(true) }), ['/bin/sh', '-c', 'echo ran']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, 'ran\n');
    });

    it('accepts every right, scope and the ABI 7 logNewExec flag, best effort or not', (t) => {
      for (const bestEffort of [false, true]) {
        const spec = baseSpec({
          landlock: landlock({
            handledFs: ALL_FS,
            handledNet: ['bind_tcp', 'connect_tcp'],
            scoped: ['abstract_unix_socket', 'signal'],
            pathRules: [...SYSTEM_RULES, { path: '/dev/null', access: ALL_FS }],
            netRules: [{ port: 5900, access: ['bind_tcp'] }],
            bestEffort,
            logNewExec: true,
          }),
        });
        const r = runExec(t, spec, ['/bin/sh', '-c', 'echo ran']);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, 'ran\n');
      }
    });

    it('lets the program read allowed dirs only (EACCES elsewhere)', (t) => {
      const allowed = tempDir(t, 'svirt-exec-');
      const denied = tempDir(t, 'svirt-exec-');
      writeFileSync(join(allowed, 'f'), 'allowed');
      writeFileSync(join(denied, 'f'), 'denied');
      const spec = baseSpec({
        landlock: landlock({
          handledFs: ALL_FS,
          pathRules: [
            ...SYSTEM_RULES,
            // a file rule with directory rights: svirt-exec keeps only the file ones
            { path: join(allowed, 'f'), access: ['read_file', 'read_dir', 'make_reg'] },
          ],
        }),
      });
      const ok = runExec(t, spec, ['/bin/cat', join(allowed, 'f')]);
      assert.equal(ok.status, 0, ok.stderr);
      assert.equal(ok.stdout, 'allowed');
      const no = runExec(t, spec, ['/bin/cat', join(denied, 'f')]);
      assert.equal(no.status, 1);
      assert.match(no.stderr, /Permission denied/);
      const write = runExec(t, spec, ['/bin/sh', '-c', `echo x > ${join(allowed, 'g')}`]);
      assert.notEqual(write.status, 0);
      assert.match(write.stderr, /Permission denied/);
      assert.equal(existsSync(join(allowed, 'g')), false);
    });

    it('denies TCP connect without a rule and allows it with a port rule', async (t) => {
      const sockets: Socket[] = [];
      const server = createServer((s) => sockets.push(s));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      t.after(() => {
        for (const s of sockets) s.destroy();
        server.close();
      });
      const address = server.address();
      assert.ok(address !== null && typeof address === 'object');
      const port = address.port;
      const script = `exec 3<>/dev/tcp/127.0.0.1/${port} && echo connected`;
      const denied = runExec(t, baseSpec({ landlock: landlock({ handledNet: ['connect_tcp'] }) }), ['/bin/bash', '-c', script]);
      assert.notEqual(denied.status, 0);
      assert.match(denied.stderr, /Permission denied/);
      const allowed = runExec(
        t,
        baseSpec({ landlock: landlock({ handledNet: ['connect_tcp'], netRules: [{ port, access: ['connect_tcp'] }] }) }),
        ['/bin/bash', '-c', script],
      );
      assert.equal(allowed.status, 0, allowed.stderr);
      assert.equal(allowed.stdout, 'connected\n');
    });

    it('scopes signals: kill() of a process outside the domain fails', async (t) => {
      const sleeper = spawn('/bin/sleep', ['60'], { stdio: 'ignore' });
      await new Promise((resolve) => sleeper.once('spawn', resolve));
      const pid = sleeper.pid ?? assert.fail('no pid');
      t.after(() => {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      });
      const script = `kill -0 ${pid} && echo signalled`;
      const scoped = runExec(t, baseSpec({ landlock: landlock({ scoped: ['signal'] }) }), ['/bin/sh', '-c', script]);
      assert.notEqual(scoped.status, 0);
      assert.match(scoped.stderr, /Operation not permitted/);
      const free = runExec(t, baseSpec({ landlock: landlock({ scoped: ['abstract_unix_socket'] }) }), ['/bin/sh', '-c', script]);
      assert.equal(free.status, 0, free.stderr);
      assert.equal(free.stdout, 'signalled\n');
      // signals inside the domain still work
      const inside = runExec(t, baseSpec({ landlock: landlock({ scoped: ['signal'] }) }), [
        '/bin/sh',
        '-c',
        'sleep 30 & kill $! && wait $!; echo $?',
      ]);
      assert.equal(inside.stdout, '143\n', inside.stderr);
    });
  });

  describe('fds', () => {
    it('closes every fd not in keepFds (the spec fd too)', (t) => {
      const [a, b] = twoOpenFds(t, 'svirt-exec-');
      // fds 4 and 5 in svirt-exec; keep 4 only. `true` keeps sh from exec'ing ls.
      const r = runExec(t, baseSpec({ keepFds: [4] }), ['/bin/sh', '-c', 'ls /proc/$$/fd; true'], { extraFds: [a, b] });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, '0\n1\n2\n4\n');
    });

    it('fails with 209 when a kept fd is not open', (t) => {
      assertStepFails(t, baseSpec({ keepFds: [77] }), 209, /^svirt-exec: fds: keep fd 77: Bad file descriptor$/m);
    });
  });

  it('fails with 210 when the program cannot be executed', (t) => {
    const r = runExec(t, baseSpec(), ['/nonexistent/qemu-system-x86_64', '-S']);
    assert.equal(r.status, 210);
    assert.equal(r.stderr, 'svirt-exec: exec: execve "/nonexistent/qemu-system-x86_64": No such file or directory\n');
  });
});
