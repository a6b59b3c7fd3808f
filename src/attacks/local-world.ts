/**
 * The world one local attack runs in: a stack, a scratch state dir, a local user's home (a
 * directory that user owns), a root-only directory of victim files, the svirt CLI run as root
 * against that state, and the user's (or a guest's) own hands via setpriv. Everything it starts
 * is ended by pid in cleanup().
 */
import { spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  constants,
  existsSync,
  fchownSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { svirtMainPath } from '../host/package-root.js';
import { waitGone } from '../host/proc.js';
import { Store, type RunningRecord } from '../store/store.js';
import { demoDomainXml } from './guests.js';
import { processesNaming } from './local-files.js';

/** A uid with no account: real to the kernel, owning nothing on the host but what the attack gives it. */
export interface LocalUser {
  readonly uid: number;
  readonly gid: number;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
  /** Killed after the time bound. */
  readonly timedOut: boolean;
}

/** Runs argv with a time bound (SIGKILL after it); never a shell. */
export function runBounded(
  cmd: string,
  argv: readonly string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RunResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(cmd, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: stderr + String(err), ms: performance.now() - t0, timedOut });
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr, ms: performance.now() - t0, timedOut });
    });
  });
}

/** The command and args that run `argv` as `who`: setpriv to its uid/gid with no groups, or directly when that is us. */
export function asUid(who: LocalUser, argv: readonly string[]): [string, string[]] {
  if (process.getuid?.() === who.uid) return [argv[0] as string, argv.slice(1)];
  return ['setpriv', [`--reuid=${who.uid}`, `--regid=${who.gid}`, '--clear-groups', '--', ...argv]];
}

export class LocalWorld {
  readonly stateDir: string;
  /** Owned by the local user (0755): their images, logs, links and FIFOs go here. */
  readonly home: string;
  /** Root's files (0755 dir, 0600/0640 files): what the attacks try to reach. */
  readonly rootDir: string;

  constructor(
    readonly stack: string,
    readonly env: NodeJS.ProcessEnv,
    readonly dir: string,
    readonly user: LocalUser,
  ) {
    this.stateDir = join(dir, 'state');
    this.home = join(dir, 'home');
    this.rootDir = join(dir, 'root');
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o755); // guest uids and the user traverse it
    mkdirSync(this.home);
    chmodSync(this.home, 0o755);
    chownSync(this.home, user.uid, user.gid);
    mkdirSync(this.rootDir);
    chmodSync(this.rootDir, 0o755);
  }

  /** `svirt --state-dir S --security-driver STACK ARGS` as root, bounded in time. */
  svirt(args: readonly string[], timeoutMs = 30_000): Promise<RunResult> {
    const argv = [svirtMainPath(), '--state-dir', this.stateDir, '--security-driver', this.stack, ...args];
    return runBounded(process.execPath, argv, timeoutMs, { ...process.env, ...this.env });
  }

  /** argv run as the local user (setpriv), bounded in time. */
  asUser(argv: readonly string[], timeoutMs = 10_000): Promise<RunResult> {
    const [cmd, args] = asUid(this.user, argv);
    return runBounded(cmd, args, timeoutMs);
  }

  /** A root file (0600 unless told) with recognisable content: a victim. */
  rootFile(name: string, content = `root secret ${name}\n`, mode = 0o600): string {
    const path = join(this.rootDir, name);
    writeFileSync(path, content, { mode });
    chmodSync(path, mode);
    return path;
  }

  /** A sparse raw image in the user's home, owned by the user, 0644; `fill` bytes of data at its start. */
  userImage(name: string, mb = 4, fill = 0): string {
    const path = join(this.home, name);
    const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
    try {
      if (fill > 0) writeSync(fd, Buffer.alloc(fill, 0x5a));
      ftruncateSync(fd, mb * 1024 * 1024);
      fchownSync(fd, this.user.uid, this.user.gid);
    } finally {
      closeSync(fd);
    }
    return path;
  }

  /** Writes the guest's XML (root's file) and defines it; throws with svirt's error when that fails. */
  async define(name: string, xml: string): Promise<void> {
    const file = join(this.dir, `${name}.xml`);
    writeFileSync(file, xml, { mode: 0o600 });
    await this.ok(['define', file]);
  }

  /** Runs svirt and throws (an attack that could not be staged) when it fails. */
  async ok(args: readonly string[], timeoutMs?: number): Promise<RunResult> {
    const r = await this.svirt(args, timeoutMs);
    if (r.code !== 0) throw new Error(`svirt ${args.join(' ')}: ${firstError(r) || `exit ${r.code}`}`);
    return r;
  }

  /** Runs argv as the user and throws when it fails (a step of the attack that must work). */
  async userOk(argv: readonly string[]): Promise<void> {
    const r = await this.asUser(argv);
    if (r.code !== 0) throw new Error(`as uid ${this.user.uid}: ${argv.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`);
  }

  /** The pids of every QEMU this world's store knows as running. */
  qemuPids(): number[] {
    return this.running().flatMap((r) => (r.pid ? [r.pid] : []));
  }

  running(): RunningRecord[] {
    if (!existsSync(join(this.stateDir, 'svirt.db'))) return [];
    const store = Store.open(this.stateDir);
    try {
      return store.listRunning();
    } finally {
      store.close();
    }
  }

  record(name: string): RunningRecord | undefined {
    return this.running().find((r) => r.name === name);
  }

  /**
   * Every guest destroyed through svirt; then every QEMU whose command line names this world's
   * dir (a start killed midway leaves one without a record) killed by pid, and its monitor
   * waited for.
   */
  async cleanup(): Promise<void> {
    for (const r of this.running()) await this.svirt(['destroy', r.name], 20_000);
    for (const p of processesNaming(`${this.dir}/`)) {
      if (p.qemu) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // gone between the scan and the kill
        }
      }
    }
    for (const p of processesNaming(`${this.dir}/`)) await waitGone(p, 10_000);
  }
}

/** held: svirt refused, or the target is untouched on disk and in every process; broken: what happened. */
export type LocalResult = 'held' | 'broken' | 'error' | 'skipped';

export interface LocalCell {
  readonly result: LocalResult;
  readonly detail: string;
  /** How long the row took under this stack. */
  ms?: number;
}

export const held = (detail: string): LocalCell => ({ result: 'held', detail });
export const broken = (detail: string): LocalCell => ({ result: 'broken', detail });
export const failed = (detail: string): LocalCell => ({ result: 'error', detail });

export interface LocalAttack {
  readonly id: string;
  readonly title: string;
  /** Needs root: another uid acts (setpriv), or svirt runs its system instance. */
  readonly rootOnly: boolean;
  run(w: LocalWorld): Promise<LocalCell>;
}

/** The first line of a CLI error, without its "error: " prefix. */
export function firstError(r: RunResult): string {
  const line = r.stderr.split('\n').find((l) => l.startsWith('error:')) ?? r.stderr.split('\n')[0] ?? '';
  return line.replace(/^error: /, '').trim();
}

/** A small guest: one raw virtio disk, TCG, optionally a serial console logged to a file. */
export function guestXml(name: string, disk: string, opts: { serialLog?: string } = {}): string {
  return demoDomainXml(name, disk, opts);
}
