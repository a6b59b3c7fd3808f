/**
 * How launch() (src/qemu/launcher.ts) reports a monitor that cannot run, or dies before it
 * names QEMU's pid: the monitor is spawned without a fork of Node (src/host/spawn.ts), so
 * its death reaches svirt through its exit status and its status pipe, not child_process.
 * Each case must fail at once with one clear error, and leave no fd of svirt's open.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, closeSync, openSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SvirtError } from '../../src/errors.js';
import { spawnProgram } from '../../src/host/spawn.js';
import { FdLayout } from '../../src/qemu/fd-layout.js';
import { launch, type LaunchRequest } from '../../src/qemu/launcher.js';
import { scratch } from '../helpers.js';

const openFds = (): number => readdirSync('/proc/self/fd').length;

/**
 * The addon's first spawn opens what it keeps for the process (the reaper's epoll set, and
 * libuv's eventfd for the exit callbacks): made once here, so the counts below see leaks only.
 */
async function warmUp(): Promise<void> {
  const keep = setTimeout(() => undefined, 10_000);
  await new Promise((resolve) => spawnProgram('/bin/true', { args: [], env: {}, fds: [], onExit: resolve }));
  clearTimeout(keep);
}

function request(dir: string, monitorPath: string, logFd: number): LaunchRequest {
  return {
    monitorPath,
    argv: ['/bin/false'],
    spec: { version: 1, rlimits: [], noNewPrivs: true, keepFds: [] },
    layout: new FdLayout(),
    logFd,
    logPath: join(dir, 'qemu.log'),
    qmpPath: join(dir, 'qmp.sock'),
    hook: ['/bin/true'],
    timeoutMs: 5_000,
  };
}

/** A stand-in monitor: a shell script with this body. */
function fakeMonitor(dir: string, body: string): string {
  const path = join(dir, 'monitor.sh');
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

async function failure(dir: string, monitor: string): Promise<SvirtError> {
  await warmUp();
  const log = openSync(join(dir, 'qemu.log'), 'w');
  const before = openFds();
  const t0 = performance.now();
  try {
    await launch(request(dir, monitor, log));
    assert.fail('launch succeeded with a monitor that cannot start QEMU');
  } catch (err) {
    assert.ok(err instanceof SvirtError, String(err));
    assert.ok(performance.now() - t0 < 4_000, 'reported at once, not at the start timeout');
    // the status socket may close a tick after the rejection
    for (let i = 0; i < 50 && openFds() > before; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(openFds(), before, 'no fd of svirt is left open');
    return err;
  } finally {
    closeSync(log);
  }
}

describe('launch: a monitor that fails before QEMU runs', () => {
  it('a monitor that cannot be run is SVIRT_ERR_NATIVE, thrown at once', async (t) => {
    const dir = scratch(t);
    const err = await failure(dir, join(dir, 'no-such-monitor'));
    assert.equal(err.code, 'SVIRT_ERR_NATIVE');
    assert.match(err.message, /^cannot run svirt-monitor: .*ENOENT|No such file/);
  });

  it('a monitor that exits without a word is SVIRT_ERR_NATIVE, with its status', async (t) => {
    const dir = scratch(t);
    const err = await failure(dir, fakeMonitor(dir, 'exit 3'));
    assert.equal(err.code, 'SVIRT_ERR_NATIVE');
    assert.match(err.message, /svirt-monitor exited/);
  });

  it('a monitor killed by a signal is reported too', async (t) => {
    const dir = scratch(t);
    const err = await failure(dir, fakeMonitor(dir, 'kill -KILL $$'));
    assert.equal(err.code, 'SVIRT_ERR_NATIVE');
    assert.match(err.message, /svirt-monitor exited/);
  });

  it("the monitor's own error line is the error", async (t) => {
    const dir = scratch(t);
    const err = await failure(dir, fakeMonitor(dir, 'echo "error cannot fork: out of pids"; exit 1'));
    assert.equal(err.code, 'SVIRT_ERR_QEMU_START');
    assert.match(err.message, /the monitor could not start the launcher: cannot fork: out of pids/);
  });
});
