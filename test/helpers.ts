import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import Database from 'better-sqlite3';
import { claimDirFromEnv } from '../src/store/host-claims.js';

/** <package root>/bin/svirt.js (tests run from dist/test/...). */
export const SVIRT_BIN = fileURLToPath(new URL('../../bin/svirt.js', import.meta.url));
export const QEMU = '/usr/bin/qemu-system-x86_64';

export function haveQemu(): boolean {
  return existsSync(QEMU);
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** The skip reason of a test that starts real QEMU guests under a root-only stack, or false. */
export function qemuAsRootSkip(why = 'the dac driver needs root'): string | false {
  if (!haveQemu()) return 'qemu-system-x86_64 is not installed';
  return isRoot() ? false : why;
}

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const BEFORE_REMOVAL = new Map<string, (() => unknown)[]>();

/** A scratch state dir, removed (after every guest in it is destroyed) when the test ends. */
export function scratch(t: TestContext, prefix = 'svirt-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o711); // guest uids traverse it to their runtime dirs (svirt never chmods a dir it did not make)
  BEFORE_REMOVAL.set(dir, []);
  t.after(async () => {
    for (const fn of (BEFORE_REMOVAL.get(dir) ?? []).reverse()) await fn();
    BEFORE_REMOVAL.delete(dir);
    await destroyAll(dir);
    rmSync(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
  });
  return dir;
}

/**
 * Runs `fn` when the test ends, before scratch() removes `dir` or the scratch dir `dir` is in
 * (the last added first). node:test runs `after` hooks in the order they were added, so a hook
 * added after scratch() finds its dir gone, and a svirt command (or a serve still running) there
 * makes a new, empty store: the `/tmp/svirt-test-*` dirs holding only svirt.db that every suite
 * run left behind, and a `svirt-claims-*` one with `a/svirt.db` from a serve in a state dir
 * made under its scratch dir (session 27).
 */
export function beforeScratchRemoval(dir: string, fn: () => unknown): void {
  let key = dir;
  for (const root of BEFORE_REMOVAL.keys()) {
    if (dir.startsWith(`${root}/`) && (key === dir || root.length > key.length)) key = root;
  }
  const list = BEFORE_REMOVAL.get(key) ?? [];
  list.push(fn);
  BEFORE_REMOVAL.set(key, list);
}

/** A temp dir named PREFIX-XXXXXX, removed when the test ends. */
export function tempDir(t: { after(fn: () => void): void }, prefix = 'svirt-tmp-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 }));
  return dir;
}

/** SIGKILL to a process this test started, if it is still there. */
export function killQuietly(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Runs the svirt CLI against a state dir. */
export function svirt(stateDir: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [SVIRT_BIN, '--state-dir', stateDir, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return resultOf(child);
}

/** A spawned command's exit code (128 when a signal ended it) and its whole output. */
export function resultOf(child: ChildProcessByStdio<null, Readable, Readable>): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, sig) => resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr }));
  });
}

/** Like svirt() but fails the test with the CLI's stderr when the command fails. */
export async function svirtOk(stateDir: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await svirt(stateDir, args, env);
  if (r.code !== 0) throw new Error(`svirt ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/**
 * Destroys every guest the store of `stateDir` knows as running, kills any QEMU left by pid,
 * and waits for the per-guest monitors (they run a reconcile once QEMU is gone).
 */
export async function destroyAll(stateDir: string): Promise<void> {
  const db = join(stateDir, 'svirt.db');
  if (!existsSync(db)) return;
  const monitors = readMonitors(stateDir);
  const rows = readRunning(stateDir);
  for (const r of rows) await svirt(stateDir, ['--security-driver', 'none', 'destroy', r.name]);
  for (const r of readRunning(stateDir)) {
    if (r.pid) {
      try {
        process.kill(r.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  await waitFor(() => monitors.every((pid) => monitorGone(pid)), 10_000);
  // A guest stopped before this call has no record left, but its monitor may still run its
  // hook, which opens the store (its -wal and -shm) while the caller removes the dir: under
  // the enforcement lab's nested TCG a Node hook takes seconds. Wait for those too.
  await waitFor(() => monitorsOfStateDir(stateDir).length === 0, 30_000);
}

/** Live svirt-monitor processes (and their backups) whose hook names `stateDir`. */
function monitorsOfStateDir(stateDir: string): number[] {
  return processesByCmdline((cmdline) => {
    const argv = cmdline.split('\0');
    return basename(argv[0] ?? '') === 'svirt-monitor' && argv.includes(stateDir);
  });
}

/** True once the monitor has exited (a zombie has an empty cmdline); it may vanish between two reads. */
function monitorGone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`).length === 0;
  } catch {
    return true; // no such process any more
  }
}

function readMonitors(stateDir: string): number[] {
  const db = new Database(join(stateDir, 'svirt.db'), { readonly: true, fileMustExist: true, timeout: 10_000 });
  try {
    return (db.prepare('SELECT monitor_pid AS pid FROM running WHERE monitor_pid IS NOT NULL').all() as { pid: number }[]).map(
      (r) => r.pid,
    );
  } finally {
    db.close();
  }
}

export function readRunning(
  stateDir: string,
): { name: string; uuid: string; pid: number | null; monitorPid: number | null; state: string; live_xml: string }[] {
  const db = new Database(join(stateDir, 'svirt.db'), { readonly: true, fileMustExist: true, timeout: 10_000 });
  try {
    return db.prepare('SELECT name, uuid, pid, monitor_pid AS monitorPid, state, live_xml FROM running').all() as {
      name: string;
      uuid: string;
      pid: number | null;
      monitorPid: number | null;
      state: string;
      live_xml: string;
    }[];
  } finally {
    db.close();
  }
}

export function countRows(
  stateDir: string,
  table: 'running' | 'reservations' | 'remembered' | 'remembered_users' | 'domains' | 'network_starts',
): number {
  const db = new Database(join(stateDir, 'svirt.db'), { readonly: true, fileMustExist: true, timeout: 10_000 });
  try {
    return (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** A raw image of `mb` MiB, owned by uid:gid with `mode`. */
export function makeImage(path: string, mb = 4, owner?: { uid: number; gid: number }, mode = 0o644): string {
  const r = spawnSync('qemu-img', ['create', '-q', '-f', 'raw', path, `${mb}M`]);
  if (r.status !== 0) writeFileSync(path, Buffer.alloc(mb * 1024 * 1024));
  if (owner) chownSync(path, owner.uid, owner.gid);
  spawnSync('chmod', [mode.toString(8), path]);
  return path;
}

export function makeQcow2(path: string, backing?: string): string {
  const args = ['create', '-q', '-f', 'qcow2', ...(backing ? ['-F', 'qcow2', '-b', backing] : []), path, '8M'];
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`qemu-img failed: ${r.stderr}`);
  return path;
}

export function owner(path: string): { uid: number; gid: number; mode: number } {
  const st = statSync(path);
  return { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
}

export interface DiskSpec {
  readonly path: string;
  readonly dev: string;
  readonly format?: 'raw' | 'qcow2';
  readonly readonly?: boolean;
  readonly shareable?: boolean;
  readonly device?: 'disk' | 'cdrom';
  readonly bus?: string;
  readonly backing?: string;
}

/** A small paused-friendly guest definition. */
export function domainXml(name: string, disks: readonly DiskSpec[], extra = ''): string {
  const diskXml = disks
    .map(
      (d) => `    <disk type='file' device='${d.device ?? 'disk'}'>
      <driver name='qemu' type='${d.format ?? 'raw'}'/>
      <source file='${d.path}'/>${
        d.backing
          ? `\n      <backingStore type='file'><format type='qcow2'/><source file='${d.backing}'/><backingStore/></backingStore>`
          : ''
      }
      <target dev='${d.dev}' bus='${d.bus ?? (d.device === 'cdrom' ? 'ide' : 'virtio')}'/>${d.readonly ? '\n      <readonly/>' : ''}${
        d.shareable ? '\n      <shareable/>' : ''
      }
    </disk>`,
    )
    .join('\n');
  return `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>${QEMU}</emulator>
${diskXml}
  </devices>${extra}
</domain>
`;
}

/** Writes a domain XML to the state dir and returns its path. */
export function writeDomain(dir: string, name: string, xml: string): string {
  const file = join(dir, `${name}.xml`);
  writeFileSync(file, xml);
  return file;
}

/** Live (not zombie: those have no command line) processes whose NUL-separated command line passes `match`. */
export function processesByCmdline(match: (cmdline: string) => boolean): number[] {
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (match(readFileSync(`/proc/${e}/cmdline`, 'utf8'))) pids.push(Number(e));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

/** Fields of /proc/PID/status. */
export function procStatus(pid: number): Map<string, string> {
  const r = spawnSync('cat', [`/proc/${pid}/status`], { encoding: 'utf8' });
  const m = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return m;
}

export async function waitFor(cond: () => boolean, timeoutMs: number, pollMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, pollMs));
  }
  return true;
}

/**
 * A ramfs mounted on a fresh temp dir, for files on a filesystem without xattrs (on a kernel
 * without SELinux, security.* and trusted.* writes there fail with EOPNOTSUPP). Lazily
 * unmounted and removed when the test ends. `{ skip }` with the reason when mount fails.
 */
export function mountRamfs(t: TestContext): { dir: string } | { skip: string } {
  const dir = mkdtempSync(join(tmpdir(), 'svirt-ramfs-'));
  const r = spawnSync('mount', ['-t', 'ramfs', '-o', 'mode=0755', 'svirt-test-ramfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return { skip: `cannot mount a ramfs here: ${(r.stderr || r.error?.message || '').trim()}` };
  }
  t.after(() => {
    // Lazy: a QEMU still holding a file there must not make the cleanup fail.
    spawnSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir };
}

/** The host-wide label claims (src/store/host-claims.ts) in this process's claim dir: name, state dir, guest. */
export function hostClaims(): { name: string; stateDir: string; uuid: string }[] {
  const dir = claimDirFromEnv();
  if (!existsSync(dir)) return [];
  return readdirSync(dir).map((name) => {
    const [, stateDir = '', uuid = ''] = readFileSync(join(dir, name), 'utf8').split('\n');
    return { name, stateDir, uuid };
  });
}

/** The names of the host-wide label claims made for guest `uuid`. */
export function claimsOfGuest(uuid: string): string[] {
  return hostClaims()
    .filter((c) => c.uuid === uuid)
    .map((c) => c.name);
}
