/**
 * One svirt "host" for the remote-access tests (qemu+tls, qemu+ssh): a network namespace the
 * test makes, with an address on its loopback, a state dir, and the real clients run inside the
 * namespace (`ip netns exec`). Nothing listens outside it. At the end, in this order: every guest
 * destroyed through svirt, every process left in the namespace ended, the namespace and the
 * dirs removed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { destroyAll, type CliResult } from '../helpers.js';
import { VIRSH } from '../remote/support.js';
import { removeNetns } from './netns.js';

export interface RemoteHost {
  readonly ns: string;
  /** The address on the namespace's loopback (its servers listen there). */
  readonly addr: string;
  readonly stateDir: string;
  /** Runs a command in the namespace, bounded by `timeoutMs`. */
  run(argv: readonly string[], o?: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string }): Promise<CliResult>;
  /** virsh -c URI ARGS in the namespace. */
  virsh(uri: string, args: readonly string[]): Promise<CliResult>;
}

export function remoteHost(t: TestContext, addr = '10.79.0.1'): RemoteHost {
  const ns = `svirt-test-${randomBytes(4).toString('hex')}`;
  const stateDir = mkdtempSync(join(tmpdir(), 'svirt-remote-'));
  chmodSync(stateDir, 0o711);
  const ip = (args: readonly string[]): void => {
    const r = spawnSync('ip', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
  };
  ip(['netns', 'add', ns]);
  t.after(async () => {
    await destroyAll(stateDir);
    await removeNetns(ns);
    rmSync(stateDir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
  });
  ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  ip(['-n', ns, 'addr', 'add', `${addr}/32`, 'dev', 'lo']);
  const run: RemoteHost['run'] = (argv, o = {}) =>
    new Promise((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', ns, ...argv], {
        stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        env: o.env ?? cleanEnv(),
      });
      if (o.input !== undefined) child.stdin?.end(o.input);
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
      child.on('error', reject);
      child.on('close', (code, sig) => {
        clearTimeout(timer);
        resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr });
      });
    });
  return { ns, addr, stateDir, run, virsh: (uri, args) => run([VIRSH, '-c', uri, ...args]) };
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env['LIBVIRT_DEFAULT_URI'];
  return env;
}
