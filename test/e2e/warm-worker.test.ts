/**
 * The CLI hands its command to the warm worker of a running `svirt serve` (src/cli/warm-worker.ts,
 * bin/svirt.js): the same output, exit status, files and audit trail as the CLI's own run; a
 * caller that differs is turned away and runs the command itself; a caller that goes takes the
 * command with it. Real serve, real QEMU (paused guests), dac + landlock.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, closeSync, constants, existsSync, mkdirSync, openSync, readSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SVIRT_BIN, domainXml, qemuAsRootSkip, scratch, waitFor, type CliResult } from '../helpers.js';
import { connectUnixAt, pollIn, sendFds } from '../../src/host/native.js';
import { startServer, type ServerHandle } from '../remote/support.js';

const STACK = ['--security-driver', 'dac,landlock'];

interface Run extends CliResult {
  readonly pid: number;
}

/** The CLI on `dir`, from `cwd`, with `input` on stdin; `env` on top of this process's. */
function cli(
  dir: string,
  args: readonly string[],
  o: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; wrap?: string[] } = {},
): Promise<Run> {
  const argv = [SVIRT_BIN, '--state-dir', dir, ...STACK, ...args];
  const [cmd, rest] = o.wrap ? [o.wrap[0] as string, [...o.wrap.slice(1), process.execPath, ...argv]] : [process.execPath, argv];
  const child = spawn(cmd, rest, { env: { ...process.env, ...o.env }, cwd: o.cwd ?? dir, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end(o.input ?? '');
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, sig) => resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr, pid: child.pid ?? 0 }));
  });
}

const LOCAL = { SVIRT_NO_WARM: '1' };

/** One request sent by hand on the worker's socket, with this process's fds 0-2 and cwd; all it answered. */
async function rawRequest(dir: string, request: object): Promise<string> {
  const monitor = openSync(join(dir, 'run', 'monitor'), constants.O_RDONLY | constants.O_DIRECTORY);
  const fd = connectUnixAt(monitor, 'cli.sock');
  closeSync(monitor);
  const cwd = openSync('.', constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    assert.ok(pollIn(fd, 5000), 'the worker says ready');
    sendFds(fd, `${JSON.stringify(request)}\n`, [0, 1, 2, cwd]);
    let text = '';
    const buf = Buffer.alloc(256);
    for (let n = 1; n > 0 && pollIn(fd, 5000);) {
      n = readSync(fd, buf, 0, buf.length, null);
      text += buf.toString('latin1', 0, n);
    }
    return text;
  } finally {
    closeSync(cwd);
    closeSync(fd);
  }
}

/** The worker's log lines for commands it ran for `pid`. */
function ranFor(server: ServerHandle, pid: number): boolean {
  return new RegExp(`warm worker: .* for pid ${pid}: exit \\d+`).test(server.stderr());
}

async function serveWithWorker(t: Parameters<typeof scratch>[0], dir: string): Promise<ServerHandle> {
  const server = await startServer(t, dir, 'dac,landlock', ['--debug']);
  const sock = join(dir, 'run', 'monitor', 'cli.sock');
  assert.ok(await waitFor(() => existsSync(sock), 30_000, 50), `the worker listens on ${sock}: ${server.stderr()}`);
  return server;
}

describe('the CLI in serve’s warm worker (issue 17)', { skip: qemuAsRootSkip() }, () => {
  it('runs the verbs there with the output, exit status, stdin, cwd and audit trail of the CLI’s own run', async (t) => {
    const dir = scratch(t, 'svirt-warm-');
    const server = await serveWithWorker(t, dir);
    // The worker listens after its warm-up, which ran every installed QEMU's -machine help.
    assert.ok(
      existsSync(join(dir, 'cache', 'qemu-machines.json')),
      'the worker filled the machine-type cache before it listened',
    );
    writeFileSync(join(dir, 'w1.xml'), domainXml('w1', []));
    // A relative FILE is the caller's cwd's.
    const def = await cli(dir, ['define', 'w1.xml']);
    assert.equal(def.code, 0, def.stderr);
    assert.ok(ranFor(server, def.pid), `define ran in the worker: ${server.stderr()}`);
    assert.match(def.stdout, /Domain 'w1' defined from w1\.xml/);
    // stdin is the caller's.
    const viaStdin = await cli(dir, ['define', '-'], { input: domainXml('w2', []) });
    assert.equal(viaStdin.code, 0, viaStdin.stderr);
    assert.ok(ranFor(server, viaStdin.pid));

    for (const args of [
      ['list', '--all'],
      ['dominfo', 'w1'],
      ['domstate', 'w2'],
      ['dumpxml', 'w1'],
      ['domuuid', 'w2'],
      ['dominfo', 'nope'],
      ['start', 'nope'],
    ]) {
      const warm = await cli(dir, args);
      const local = await cli(dir, args, { env: LOCAL });
      assert.ok(ranFor(server, warm.pid), `${args.join(' ')} ran in the worker`);
      assert.ok(!ranFor(server, local.pid), `SVIRT_NO_WARM=1: ${args.join(' ')} ran in the CLI`);
      assert.deepEqual(
        { code: warm.code, stdout: warm.stdout, stderr: warm.stderr },
        { code: local.code, stdout: local.stdout, stderr: local.stderr },
        args.join(' '),
      );
    }

    const start = await cli(dir, ['start', 'w1', '--paused']);
    assert.equal(start.code, 0, start.stderr);
    assert.ok(ranFor(server, start.pid), `start ran in the worker: ${server.stderr()}`);
    for (const verb of ['resume', 'suspend']) {
      const r = await cli(dir, [verb, 'w1']);
      assert.equal(r.code, 0, `${verb}: ${r.stderr}`);
      assert.ok(ranFor(server, r.pid), verb);
    }
    // save writes a relative FILE in the caller's cwd; restore starts QEMU from it, in the worker.
    const save = await cli(dir, ['save', 'w1', 'w1.save']);
    assert.equal(save.code, 0, save.stderr);
    assert.ok(ranFor(server, save.pid), `save ran in the worker: ${server.stderr()}`);
    assert.match(save.stdout, /Domain 'w1' saved to w1\.save/);
    assert.ok(existsSync(join(dir, 'w1.save')), "the save file is in the caller's cwd");
    const restore = await cli(dir, ['restore', 'w1.save', '--paused']);
    assert.equal(restore.code, 0, restore.stderr);
    assert.ok(ranFor(server, restore.pid), `restore ran in the worker: ${server.stderr()}`);
    assert.match(restore.stdout, /Domain 'w1' restored from w1\.save/);
    const state = await cli(dir, ['domstate', 'w1'], { env: LOCAL });
    assert.equal(state.stdout.trim(), 'paused');
    const destroy = await cli(dir, ['destroy', 'w1']);
    assert.equal(destroy.code, 0, destroy.stderr);
    assert.ok(ranFor(server, destroy.pid), 'destroy');
    // The CLI's own run takes a relative FILE the same way (it refused one before session 18).
    for (const args of [
      ['start', 'w1', '--paused'],
      ['save', 'w1', 'w1-local.save'],
      ['restore', 'w1-local.save'],
      ['destroy', 'w1'],
    ]) {
      const r = await cli(dir, args, { env: LOCAL });
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(!ranFor(server, r.pid));
    }
    // A transient guest from the caller's stdin, and a reset of it.
    const create = await cli(dir, ['create', '-', '--paused'], { input: domainXml('t1', []) });
    assert.equal(create.code, 0, create.stderr);
    assert.ok(ranFor(server, create.pid), 'create ran in the worker');
    for (const verb of ['reset', 'destroy']) {
      const r = await cli(dir, [verb, 't1']);
      assert.equal(r.code, 0, `${verb}: ${r.stderr}`);
      assert.ok(ranFor(server, r.pid), verb);
    }
    const undef = await cli(dir, ['undefine', 'w2']);
    assert.equal(undef.code, 0, undef.stderr);
    assert.ok(ranFor(server, undef.pid), 'undefine');
    const list = await cli(dir, ['list', '--all', '--name'], { env: LOCAL });
    assert.deepEqual(list.stdout.trim().split('\n'), ['w1']);

    // The audit trail names the CLI process that asked, not the worker.
    const audit = await cli(dir, ['audit'], { env: LOCAL });
    assert.equal(audit.code, 0, audit.stderr);
    assert.match(audit.stdout, new RegExp(`pid=${def.pid} define`), 'define is recorded with the caller’s pid');
    assert.match(audit.stdout, new RegExp(`pid=${start.pid} start`), 'start is recorded with the caller’s pid');
  });

  it('turns away a caller that is not serve’s twin, and that caller runs the command itself', async (t) => {
    const dir = scratch(t, 'svirt-warm-');
    const server = await serveWithWorker(t, dir);
    writeFileSync(join(dir, 'w1.xml'), domainXml('w1', []));
    const env = await cli(dir, ['define', 'w1.xml'], { env: { SVIRT_TEST_MARK: '1' } });
    assert.equal(env.code, 0, env.stderr);
    assert.match(server.stderr(), new RegExp(`declined pid ${env.pid}: its SVIRT_TEST_MARK differs`));
    assert.ok(!ranFor(server, env.pid));
    const ns = await cli(dir, ['dominfo', 'w1'], { wrap: ['unshare', '--net', '--'] });
    assert.equal(ns.code, 0, ns.stderr);
    assert.match(ns.stdout, /Name:\s+w1/);
    assert.match(server.stderr(), new RegExp(`declined pid ${ns.pid}: its net namespace differs`));
    const nice = await cli(dir, ['start', 'w1', '--paused'], { wrap: ['nice', '-n', '5'] });
    assert.equal(nice.code, 0, nice.stderr);
    assert.match(
      server.stderr(),
      new RegExp(`declined pid ${nice.pid}: its nice value differs`),
      'QEMU would have inherited the nice value',
    );
    const destroy = await cli(dir, ['destroy', 'w1'], { wrap: ['nice', '-n', '5'] });
    assert.equal(destroy.code, 0, destroy.stderr);
    assert.ok(ranFor(server, destroy.pid), 'a destroy starts no QEMU: the nice value does not matter');
  });

  it('never hands its terminal, cwd or environment to a socket in a dir another uid could reach', async (t) => {
    const dir = scratch(t, 'svirt-warm-');
    const monitor = join(dir, 'run', 'monitor');
    mkdirSync(monitor, { recursive: true, mode: 0o755 });
    chmodSync(monitor, 0o755);
    // A listener that is not svirt's: it counts who connects.
    let connections = 0;
    const fake = createServer(() => void connections++);
    await new Promise<void>((resolve) => fake.listen(join(monitor, 'cli.sock'), resolve));
    t.after(() => fake.close());
    const open = await cli(dir, ['list', '--all']);
    assert.equal(open.code, 0, open.stderr);
    assert.match(open.stdout, /Id\s+Name\s+State/);
    chmodSync(monitor, 0o700);
    chownSync(monitor, 65534, 65534);
    const theirs = await cli(dir, ['list', '--all']);
    assert.equal(theirs.code, 0, theirs.stderr);
    chownSync(monitor, 0, 0);
    assert.equal(connections, 0, 'a world-readable dir, or a dir of another uid: the CLI did not connect');
  });

  it('a caller that goes takes its command with it; serve starts another worker, and a busy one sends callers back to run it themselves', async (t) => {
    const dir = scratch(t, 'svirt-warm-');
    const server = await serveWithWorker(t, dir);
    writeFileSync(join(dir, 'w1.xml'), domainXml('w1', []));
    assert.equal((await cli(dir, ['define', 'w1.xml'])).code, 0);
    assert.equal((await cli(dir, ['start', 'w1', '--paused'])).code, 0);
    const worker = /warm worker (\d+): the CLI's/.exec(server.stderr())?.[1];
    assert.ok(worker, server.stderr());
    // A paused guest never answers the ACPI request: shutdown waits, and the worker with it.
    const argv = [SVIRT_BIN, '--state-dir', dir, ...STACK, 'shutdown', 'w1', '--timeout', '30'];
    const slow = spawn(process.execPath, argv, { stdio: 'ignore' });
    t.after(() => slow.kill('SIGKILL'));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(slow.exitCode, null, 'shutdown still waits for the guest');
    const meanwhile = await cli(dir, ['list', '--all']);
    assert.equal(meanwhile.code, 0, meanwhile.stderr);
    assert.match(meanwhile.stdout, /w1\s+paused/);
    assert.ok(!ranFor(server, meanwhile.pid), 'the busy worker sent the caller back');
    slow.kill('SIGINT');
    assert.ok(await waitFor(() => !existsSync(`/proc/${worker}`), 10_000), 'the worker went with its caller');
    assert.ok(
      await waitFor(() => (server.stderr().match(/warm worker \d+: the CLI's/g) ?? []).length >= 2, 30_000),
      `another worker: ${server.stderr()}`,
    );
    const after = await cli(dir, ['destroy', 'w1']);
    assert.equal(after.code, 0, after.stderr);
    assert.ok(ranFor(server, after.pid), 'the new worker runs commands');
    // A caller of another build (svirt rebuilt while serve ran) is declined, and the worker makes way for one of the new build.
    assert.match(
      await rawRequest(dir, { argv: ['list'], env: process.env, umask: 0o022, build: 'another' }),
      /^ready\nno another build of svirt\n$/,
    );
    assert.ok(
      await waitFor(() => (server.stderr().match(/warm worker \d+: the CLI's/g) ?? []).length >= 3, 30_000),
      `a third worker: ${server.stderr()}`,
    );
    await server.stop();
    assert.ok(!existsSync(join(dir, 'run', 'monitor', 'cli.sock')), 'serve’s worker removed its socket');
    const alone = await cli(dir, ['list', '--all']);
    assert.equal(alone.code, 0, alone.stderr);
    assert.match(alone.stdout, /w1\s+shut off/);
  });
});
