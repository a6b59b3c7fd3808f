/** Helpers for the `svirt serve` tests: the server as a child process, and the real libvirt clients. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { SVIRT_BIN, beforeScratchRemoval, haveQemu, isRoot, type CliResult } from '../helpers.js';
import { stopChild } from '../../src/host/stop-child.js';

export const VIRSH = '/usr/bin/virsh';
/** Debian's python, the one that can import python3-libvirt (not whatever python3 is first on PATH). */
export const DEBIAN_PYTHON = '/usr/bin/python3';

export function haveVirsh(): boolean {
  return existsSync(VIRSH);
}

/** Why a test of guests under dac driven by virsh through serve cannot run here, or false. */
export function qemuDacVirshSkip(): string | false {
  return !haveQemu()
    ? 'qemu-system-x86_64 is not installed'
    : !isRoot()
      ? 'the dac driver needs root'
      : !haveVirsh()
        ? 'virsh is not installed'
        : false;
}

export function havePythonLibvirt(): boolean {
  if (!existsSync(DEBIAN_PYTHON)) return false;
  return spawnSync(DEBIAN_PYTHON, ['-c', 'import libvirt'], { stdio: 'ignore' }).status === 0;
}

export interface ServerHandle {
  readonly socket: string;
  readonly roSocket: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Everything the server wrote to stderr so far. */
  stderr(): string;
  /** Sends SIGTERM and waits for the exit code. */
  stop(): Promise<number | null>;
}

export interface ServerLaunch {
  /** Start the server with this RLIMIT_NOFILE (soft and hard), through util-linux's prlimit (which execs it: same pid). */
  readonly nofile?: number;
  /** Run the server in this network namespace (`ip netns exec`, which execs it: same pid). */
  readonly netns?: string;
}

/**
 * Starts `node bin/svirt.js --state-dir DIR --security-driver STACK serve --socket DIR/sock`
 * and waits for its "listening" line. Killed by pid when the test ends.
 */
export async function startServer(
  t: TestContext,
  stateDir: string,
  stack = 'dac,landlock',
  extra: readonly string[] = [],
  launch: ServerLaunch = {},
): Promise<ServerHandle> {
  const socket = join(stateDir, 'sock');
  const argv = [SVIRT_BIN, '--state-dir', stateDir, '--security-driver', stack, 'serve', '--socket', socket, ...extra];
  const [cmd, args] =
    launch.netns !== undefined
      ? ['ip', ['netns', 'exec', launch.netns, process.execPath, ...argv]]
      : launch.nofile === undefined
        ? [process.execPath, argv]
        : ['prlimit', [`--nofile=${launch.nofile}:${launch.nofile}`, '--', process.execPath, ...argv]];
  const child = spawn(cmd, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SVIRT_SERVE_DEBUG: '0' },
  });
  let stdout = '';
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const pid = child.pid;
  if (pid === undefined) throw new Error('svirt serve did not start');
  t.after(() => stopChild(child, 10_000));
  // A scratch state dir's removal (a hook registered before this one, so run first) must not
  // race a serve still writing in it: its warm worker fills STATE/cache as it warms up.
  beforeScratchRemoval(stateDir, () => stopChild(child, 10_000));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`svirt serve did not listen within 30 s: ${stderr}`)), 30_000);
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`svirt serve exited with ${code}: ${stderr}`));
    });
  });
  return {
    socket,
    roSocket: `${socket}-ro`,
    pid,
    child,
    stderr: () => stderr,
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

export function uri(socket: string): string {
  return `qemu+unix:///system?socket=${socket}`;
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env['LIBVIRT_DEFAULT_URI'];
  return env;
}

function run(cmd: string, args: readonly string[], cwd?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'], ...(cwd ? { cwd } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, sig) => resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr }));
  });
}

/** Runs the real virsh against the server's socket (`--readonly` with ro). */
export function virsh(socket: string, args: readonly string[], opts: { readonly?: boolean } = {}): Promise<CliResult> {
  return run(VIRSH, [...(opts.readonly ? ['--readonly'] : []), '-c', uri(socket), ...args]);
}

/** virsh that must succeed; the failure message carries virsh's stderr. */
export async function virshOk(socket: string, args: readonly string[], opts: { readonly?: boolean } = {}): Promise<string> {
  const r = await virsh(socket, args, opts);
  if (r.code !== 0) throw new Error(`virsh ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** Runs a python-libvirt script with Debian's python; argv after the script. */
export function python(script: string, args: readonly string[]): Promise<CliResult> {
  return run(DEBIAN_PYTHON, [script, ...args]);
}
