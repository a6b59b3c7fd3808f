/**
 * Test "hosts" for the many-hosts tests (issue 16): each host is a network namespace of its
 * own (its `eth0` on a test LAN, 10.77.0.N/24), a state dir and run dir of its own, and its
 * own range of dynamic DAC ids, so two hosts on this one machine behave like two machines
 * sharing a storage tree. The LAN is a bridge in a namespace of its own; traffic stays in
 * those namespaces. Everything (serves, QEMUs, namespaces, dirs) goes when the test ends.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { SVIRT_BIN, destroyAll, type CliResult } from '../helpers.js';
import { stopChild } from '../../src/host/stop-child.js';
import { netns, nsRun } from './netns.js';

export interface TestHost {
  /** host1, host2, ... */
  readonly name: string;
  readonly ns: string;
  /** Its address on the test LAN. */
  readonly addr: string;
  readonly stateDir: string;
  /** Its dynamic DAC ids (SVIRT_DAC_RANGE), disjoint from every other test host's. */
  readonly dacRange: string;
  /** The environment svirt gets on this host (its DAC range, its cgroup parent), for tests that run svirt themselves. */
  readonly env: Readonly<Record<string, string>>;
  /** The svirt CLI on this host (inside its namespace, with its state dir and id range). */
  svirt(args: readonly string[], env?: Record<string, string>): Promise<CliResult>;
  svirtOk(args: readonly string[], env?: Record<string, string>): Promise<string>;
  /**
   * Starts `svirt serve` on this host unless it runs (`env`: more environment, e.g. a crash
   * point); resolves with its socket. `hide`: directories the serve, and every QEMU it starts,
   * see empty (a tmpfs over each in a mount namespace of their own): storage this host does
   * not reach.
   */
  serve(env?: Record<string, string>, opts?: { readonly hide?: readonly string[] }): Promise<string>;
  /** Whether this host's serve runs (a crash point may have ended it). */
  serving(): boolean;
  /** The libvirt URI of this host's serve, as clients on the same machine reach it. */
  readonly uri: string;
}

const LAN_PREFIX = '10.77.0';

/** The skip reason of the host tests, or false. */
export function hostsSkip(): string | false {
  if (process.getuid?.() !== 0) return 'test hosts need root (network namespaces, per-guest uids)';
  return false;
}

/**
 * Makes `count` hosts on one LAN. `stack` is every host's security stack. Hosts are removed
 * when the test ends: every guest destroyed through its own svirt, serve stopped, namespaces
 * (and anything left in them) removed, state dirs deleted.
 */
export function makeHosts(
  t: TestContext,
  count: number,
  stack = 'dac,landlock',
  /** How svirt is run (the lab's confined launcher); default: this node with bin/svirt.js. */
  entry: { readonly file: string; readonly args: readonly string[] } = { file: process.execPath, args: [SVIRT_BIN] },
): TestHost[] {
  const lan = netns(t);
  nsRun(lan, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
  nsRun(lan, ['ip', 'link', 'set', 'br0', 'up']);
  const hosts: TestHost[] = [];
  const base = 1_950_000_000 + Math.floor(Math.random() * 1000) * 10_000;
  for (let i = 0; i < count; i++) {
    const ns = netns(t);
    const peer = `h${i}-${randomBytes(2).toString('hex')}`;
    nsRun(lan, ['ip', 'link', 'add', peer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    nsRun(lan, ['ip', 'link', 'set', peer, 'master', 'br0']);
    nsRun(lan, ['ip', 'link', 'set', peer, 'up']);
    const addr = `${LAN_PREFIX}.${i + 1}`;
    nsRun(ns, ['ip', 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
    nsRun(ns, ['ip', 'link', 'set', 'eth0', 'up']);
    hosts.push(host(t, `host${i + 1}`, ns, addr, `${base + i * 1000}-${base + i * 1000 + 999}`, stack, entry));
  }
  return hosts;
}

function host(
  t: TestContext,
  name: string,
  ns: string,
  addr: string,
  dacRange: string,
  stack: string,
  entry: { readonly file: string; readonly args: readonly string[] },
): TestHost {
  const stateDir = mkdtempSync(join(tmpdir(), `svirt-${name}-`));
  chmodSync(stateDir, 0o711);
  const socket = join(stateDir, 'libvirt-sock');
  let server: ChildProcess | undefined;
  // Guests' cgroups are svirt-<uuid> under svirt's own cgroup: every host here runs in the test's
  // cgroup, and both ends of a migration have the same uuid, so each host gets a parent of its
  // own (real hosts are apart by machine), removed at the end.
  const cgroupParent = `/svirt-testhost-${name}-${randomBytes(3).toString('hex')}`;
  // Its host-wide label claims in a dir of its own too: both ends of a migration are one guest
  // (one uuid, one AppArmor profile name), which two machines' kernels would not share. Made by
  // svirt in its state dir: in the lab a confined svirt may write there (not in a test's /tmp dir).
  const claimDir = join(stateDir, 'claims');
  const hostEnv = { SVIRT_DAC_RANGE: dacRange, SVIRT_CGROUP_PARENT: cgroupParent, SVIRT_CLAIM_DIR: claimDir };
  // svirt runs in the host's network namespace only (nsenter --net), not under `ip netns exec`,
  // which also remounts /sys: that hides selinuxfs and the cgroup tree, and svirt would see a
  // kernel without SELinux (found by the enforcement lab's migration test).
  const run = (args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> =>
    new Promise((resolve, reject) => {
      const child = spawn(
        'nsenter',
        [`--net=/run/netns/${ns}`, '--', entry.file, ...entry.args, '--state-dir', stateDir, '--security-driver', stack, ...args],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...hostEnv, ...env } },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code, sig) => resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr }));
    });
  // Registered before the namespace's own removal runs (t.after runs in reverse order).
  t.after(async () => {
    await destroyAll(stateDir);
    if (server !== undefined) await stopChild(server, 10_000);
    rmSync(stateDir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
    removeCgroupParent(cgroupParent);
  });
  return {
    name,
    ns,
    addr,
    stateDir,
    dacRange,
    env: hostEnv,
    uri: `qemu+unix:///system?socket=${socket}`,
    svirt: run,
    async svirtOk(args, env) {
      const r = await run(args, env);
      if (r.code !== 0) throw new Error(`${name}: svirt ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
      return r.stdout;
    },
    serving: () => server !== undefined,
    async serve(extraEnv = {}, opts = {}) {
      if (server) return socket;
      const hide = opts.hide ?? [];
      const child = spawn(
        hide.length > 0 ? 'unshare' : 'nsenter',
        [
          ...(hide.length > 0 ? ['--mount', '--propagation', 'private', 'nsenter'] : []),
          `--net=/run/netns/${ns}`,
          '--',
          entry.file,
          ...entry.args,
          '--state-dir',
          stateDir,
          '--security-driver',
          stack,
          'serve',
          '--socket',
          socket,
        ],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, ...hostEnv, SVIRT_SERVE_DEBUG: '0', ...extraEnv },
        },
      );
      server = child;
      child.once('exit', () => {
        if (server === child) server = undefined;
      });
      let out = '';
      let err = '';
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        if (process.env['SVIRT_TEST_HOST_LOG'] === '1') process.stderr.write(`[${name}] ${d.toString()}`);
      });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name}: svirt serve did not listen within 30 s: ${err}`)), 30_000);
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('listening on')) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`${name}: svirt serve exited (${code}): ${err}`));
        });
      });
      for (const d of hide) {
        // unshare and nsenter exec in place: the child's pid is the serve's, in its own mount namespace.
        nsMount(child.pid as number, d);
      }
      return socket;
    },
  };
}

/** A tmpfs over `dir` in the mount namespace of process `pid` only. */
function nsMount(pid: number, dir: string): void {
  const r = spawnSync(
    'nsenter',
    [`--mount=/proc/${pid}/ns/mnt`, '--', 'mount', '-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'svirt-hidden', dir],
    {
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) throw new Error(`cannot hide ${dir} from process ${pid}: ${r.stderr}`);
}

/** The host's cgroup parent in every hierarchy (v1 mounts and cgroup2), once its guests' cgroups are gone. */
function removeCgroupParent(parent: string): void {
  const root = '/sys/fs/cgroup';
  if (!existsSync(root)) return;
  for (const dir of [root, ...readdirSync(root).map((m) => join(root, m))]) {
    try {
      rmdirSync(join(dir, parent));
    } catch {
      // not made in this hierarchy (or not a hierarchy)
    }
  }
}
