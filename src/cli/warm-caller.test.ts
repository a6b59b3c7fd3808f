import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { resolveStatePaths } from '../host/paths.js';
import { WARM_VERBS, contextDiffers, parseRequest, pinnedEnvDiffers, processContext, startDiffers } from './warm-caller.js';
import { WARM_SOCKET_NAME } from './warm-worker.js';

/** bin/svirt.js, from dist/src/cli/. */
const bin = createRequire(import.meta.url)('../../../bin/svirt.js') as {
  WARM_VERBS: Set<string>;
  monitorDirOf(argv: readonly string[], env: Record<string, string | undefined>, uid: number): string;
};

const line = (v: unknown): Buffer => Buffer.from(`${JSON.stringify(v)}\n`);

/** A sleeping child started through `argv` (setpriv, unshare, nice …), killed by pid when the test ends. */
async function sleeper(t: TestContext, argv: readonly string[]): Promise<number> {
  const [cmd, ...rest] = [...argv, process.execPath, '-e', 'setTimeout(() => {}, 20000)'];
  const child = spawn(cmd as string, rest, { stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
  const pid = child.pid;
  assert.ok(pid);
  // The wrappers exec the sleeper (same pid): wait until /proc shows node.
  for (let i = 0; i < 100; i++) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'latin1').startsWith('node')) break;
    } catch {
      // not there yet
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return pid;
}

const ROOT = process.getuid?.() === 0 ? false : 'needs root (namespaces, uids, capabilities of a child)';

describe('the warm worker: what it serves', () => {
  it('bin/svirt.js hands over exactly the verbs the worker runs, on the socket it listens on', () => {
    assert.deepEqual([...bin.WARM_VERBS].sort(), [...WARM_VERBS].sort());
    assert.equal(WARM_SOCKET_NAME, 'cli.sock');
  });

  it("bin/svirt.js finds the monitor dir where src/host/paths.ts puts the state dir's runtime root", () => {
    const cases: [string[], Record<string, string | undefined>, number][] = [
      [['--state-dir', '/var/tmp/x', 'list'], {}, 0],
      [['list', '--state-dir', 'rel/dir'], {}, 0],
      [['--state-dir=/srv/s', 'dominfo', 'g'], {}, 0],
      [['list'], { SVIRT_STATE_DIR: '/from/env' }, 0],
      [['--state-dir', '/a', '--state-dir', '/b', 'list'], {}, 0],
      [['list'], {}, 0],
      [['list'], { XDG_RUNTIME_DIR: '/run/user/1000' }, 1000],
      [['list'], { HOME: '/home/u' }, 1000],
      [['list'], { SVIRT_STATE_DIR: '' }, 0],
    ];
    for (const [argv, env, uid] of cases) {
      const eq = argv.find((a) => a.startsWith('--state-dir='))?.slice('--state-dir='.length);
      const flags = argv.flatMap((a, i) => (a === '--state-dir' ? [argv[i + 1] as string] : []));
      const explicit = eq ?? flags[flags.length - 1];
      const paths = resolveStatePaths(explicit, env, uid);
      assert.equal(bin.monitorDirOf(argv, env, uid), resolve(join(paths.runtimeRoot, 'monitor')), argv.join(' '));
    }
  });
});

describe('the warm worker: the request', () => {
  const good = { argv: ['list'], env: { PATH: '/usr/bin', SVIRT_X: '1' }, umask: 0o022, build: '1234:1700000000000' };

  it('takes one JSON line with argv, env and umask', () => {
    assert.deepEqual(parseRequest(line(good)), good);
  });

  it('refuses anything else, and anything past its bounds', () => {
    const bad: [Buffer, RegExp][] = [
      [Buffer.from(JSON.stringify(good)), /one request line/],
      [Buffer.from('{"argv":\n'), /not JSON/],
      [line(null), /not an object/],
      [line({ ...good, argv: 'list' }), /bad argv/],
      [line({ ...good, argv: [1] }), /bad argv/],
      [line({ ...good, argv: Array.from({ length: 257 }, () => 'x') }), /bad argv/],
      [line({ ...good, env: ['a'] }), /bad env/],
      [line({ ...good, env: { A: 1 } }), /bad env/],
      [line({ ...good, env: Object.fromEntries(Array.from({ length: 4097 }, (_, i) => [`V${i}`, ''])) }), /bad env/],
      [line({ ...good, env: { 'A=B': 'x' } }), /bad env/],
      [line({ ...good, env: { A: 'x\0y' } }), /bad env/],
      [line({ ...good, umask: 0o1000 }), /bad umask/],
      [line({ ...good, umask: 1.5 }), /bad umask/],
      [line({ ...good, build: 7 }), /bad build/],
      [line({ ...good, build: 'x'.repeat(65) }), /bad build/],
      [Buffer.alloc(256 * 1024 + 1, 0x0a), /one request line/],
    ];
    for (const [data, why] of bad) assert.match(String(parseRequest(data)), why);
  });

  it("compares the SVIRT_* and NODE_* variables, which choose svirt's drivers, programs and Node's own start", () => {
    assert.equal(pinnedEnvDiffers({ PATH: '/a', SVIRT_A: '1' }, { PATH: '/b', SVIRT_A: '1', HOME: '/x' }), undefined);
    assert.equal(pinnedEnvDiffers({ SVIRT_A: '1' }, { SVIRT_A: '2' }), 'SVIRT_A');
    assert.equal(pinnedEnvDiffers({}, { SVIRT_SECURITY_DRIVER: 'dac' }), 'SVIRT_SECURITY_DRIVER');
    assert.equal(pinnedEnvDiffers({ NODE_OPTIONS: '--x' }, {}), 'NODE_OPTIONS');
    assert.equal(pinnedEnvDiffers({ SVIRT_SERVE_DEBUG: '1' }, {}), undefined, "serve's own settings");
  });
});

describe('the warm worker: who it serves', { skip: ROOT }, () => {
  const own = processContext('self');

  it("serves a caller whose uids, capabilities, namespaces, root and label are this process's", async (t) => {
    assert.equal(contextDiffers(await sleeper(t, []), own), undefined);
  });

  it('turns away a caller that differs in any of them', async (t) => {
    const cases: [string[], RegExp][] = [
      [['unshare', '--net', '--'], /net namespace/],
      [['unshare', '--mount', '--'], /mnt namespace/],
      [['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'], /Uid|Gid|Groups|Cap/],
      [['setpriv', '--groups=4242', '--'], /Groups/],
      [['setpriv', '--bounding-set=-sys_admin', '--'], /Cap(Prm|Eff|Bnd)/],
      [['setpriv', '--no-new-privs', '--'], /NoNewPrivs/],
    ];
    for (const [wrap, why] of cases) assert.match(String(contextDiffers(await sleeper(t, wrap), own)), why, wrap.join(' '));
  });

  it('starts a QEMU only for a caller whose QEMU would inherit the same limits, affinity, nice value, OOM score and cgroup', async (t) => {
    assert.equal(startDiffers(await sleeper(t, []), undefined), undefined);
    const cases: [string[], RegExp][] = [
      [['prlimit', '--nofile=321:321', '--'], /resource limits/],
      [['nice', '-n', '7'], /nice value/],
      ...(/^Cpus_allowed_list:\s*0\s*$/m.test(readFileSync('/proc/self/status', 'latin1'))
        ? []
        : [[['taskset', '-c', '0'], /CPU affinity/] as [string[], RegExp]]),
      [['choom', '-n', '300', '--'], /OOM score/],
    ];
    for (const [wrap, why] of cases) assert.match(String(startDiffers(await sleeper(t, wrap), undefined)), why, wrap.join(' '));
  });
});
