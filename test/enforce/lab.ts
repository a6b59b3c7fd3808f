/**
 * Helpers of the enforcement tests. These tests run only inside the enforcement lab
 * (lab/run.sh, `npm run test:enforce`): a VM whose kernel enforces SELinux or AppArmor.
 * Everywhere else they skip, saying why.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { QmpClient } from '../../src/qemu/qmp-client.js';
import { destroyAll, haveQemu, isRoot, makeImage, readRunning, SVIRT_BIN, type CliResult } from '../helpers.js';

export type LabMode = 'selinux' | 'apparmor';

function readTrim(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').replace(/\0/g, '').trim();
  } catch {
    // absent on this kernel: the caller reports what is missing
    return undefined;
  }
}

/** false inside the lab VM of `mode` with the kernel really enforcing it, else why the tests skip. */
export function labSkip(mode: LabMode): string | false {
  const lab = process.env['SVIRT_LAB'];
  if (lab !== mode) {
    return `runs only inside the enforcement lab's ${mode} VM (npm run test:enforce); SVIRT_LAB is ${lab === undefined ? 'unset' : JSON.stringify(lab)}`;
  }
  if (mode === 'selinux' && readTrim('/sys/fs/selinux/enforce') !== '1')
    return 'SVIRT_LAB=selinux but the kernel does not enforce SELinux';
  if (mode === 'apparmor') {
    if (readTrim('/sys/module/apparmor/parameters/enabled') !== 'Y')
      return 'SVIRT_LAB=apparmor but the kernel does not run AppArmor';
    if (!existsSync('/sys/kernel/security/apparmor/profiles')) return 'SVIRT_LAB=apparmor but securityfs is not mounted';
  }
  if (!isRoot()) return 'the lab runs svirt as root';
  if (!haveQemu()) return 'qemu-system-x86_64 is not installed';
  return false;
}

/**
 * State dirs of one test group, reachable by the guests' uids (mode 0755: the dac driver needs
 * o+x on the path to the runtime dir). `cleanup()` (register it with after()) destroys every
 * guest and removes the dirs.
 */
export class LabDirs {
  private readonly dirs: string[] = [];

  make(prefix: string): string {
    const dir = mkdtempSync(join('/tmp', prefix));
    chmodSync(dir, 0o755);
    // svirt's state, as under /var/lib/svirt: what the manager's domain (virtd_t) may write
    if (selinuxOn()) chcon('virt_var_lib_t', dir);
    this.dirs.push(dir);
    return dir;
  }

  async cleanup(): Promise<void> {
    for (const dir of this.dirs.splice(0)) {
      await destroyAll(dir);
      // A monitor's hook from an earlier destroy may still open the store (its -wal, -shm):
      // retried, as scratch() does (test/helpers.ts).
      rmSync(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
    }
  }
}

function selinuxOn(): boolean {
  return existsSync('/sys/fs/selinux/enforce');
}

function chcon(type: string, path: string): void {
  const r = spawnSync('chcon', ['-t', type, path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`chcon -t ${type} ${path}: ${r.stderr}`);
}

/**
 * A raw image for a guest, made as an administrator makes one: under SELinux it is
 * virt_image_t (as under /var/lib/svirt/images), the type the manager's domain may relabel;
 * it may not relabel arbitrary files (docs/confinement.md).
 */
export function labImage(path: string, mb = 4): string {
  makeImage(path, mb);
  return labelAsImage(path);
}

/** Under SELinux, gives a file the test made svirt's image type (virt_image_t); see labImage. */
export function labelAsImage(path: string): string {
  if (selinuxOn()) chcon('virt_image_t', path);
  return path;
}

/**
 * svirt's entry point in the lab: the confined install's launcher (lab/guest/stage2.sh,
 * policy/confine-install.sh), so the manager runs in its own domain / profile; the
 * checkout's bin/svirt.js through this node elsewhere.
 */
export function svirtEntry(which: 'install' | 'test-build' = 'install'): { file: string; args: string[] } {
  const entry = process.env[which === 'install' ? 'SVIRT_LAB_ENTRY' : 'SVIRT_LAB_TEST_ENTRY'];
  return entry ? { file: entry, args: [] } : { file: process.execPath, args: [SVIRT_BIN] };
}

/** How long one svirt command may take in the lab (nested TCG is slow) before it is killed. */
export const SVIRT_TIMEOUT_MS = 60_000;

/** Runs the svirt CLI; a command that hangs is killed after SVIRT_TIMEOUT_MS (code 124). */
export function svirtRun(
  stateDir: string,
  args: readonly string[],
  which: 'install' | 'test-build' = 'install',
): Promise<CliResult> {
  const entry = svirtEntry(which);
  return new Promise((resolve, reject) => {
    const child = spawn(entry.file, [...entry.args, '--state-dir', stateDir, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: SVIRT_TIMEOUT_MS,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    // 'exit', not 'close': a QEMU left behind may hold the pipes open
    child.on('exit', (code, sig) => {
      child.stdout.destroy();
      child.stderr.destroy();
      resolve(
        sig === 'SIGKILL'
          ? { code: 124, stdout, stderr: `${stderr}(killed after ${SVIRT_TIMEOUT_MS} ms)` }
          : { code: code ?? 1, stdout, stderr },
      );
    });
  });
}

/** svirtRun that throws with the CLI's stderr when the command fails. */
export async function svirtOk(stateDir: string, args: readonly string[]): Promise<string> {
  const r = await svirtRun(stateDir, args);
  if (r.code !== 0) throw new Error(`svirt ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

export function run(cmd: string, args: readonly string[]): { code: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { code: r.status ?? 1, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/** The SELinux context of a file (`stat -c %C`, i.e. its security.selinux), or '' without one. */
export function fileContext(path: string): string {
  const r = run('stat', ['-c', '%C', path]);
  const c = r.out.trim();
  return r.code === 0 && c !== '?' ? c : '';
}

/**
 * The AppArmor label QEMU (or a helper) runs under for profile `name`. A confined manager
 * (svirt-manager) cannot leave its profile under no_new_privs, which svirt-exec sets: it
 * stacks the guest's profile on its own instead (docs/confinement.md), so QEMU is confined
 * by both, `NAME//&svirt-manager`.
 */
export function guestAppArmorLabel(name: string): string {
  // the kernel orders a stack's profiles by name: a guest's svirt-<hex> before svirt-manager
  return process.env['SVIRT_LAB_ENTRY'] ? `${name}//&svirt-manager (enforce)` : `${name} (enforce)`;
}

/** The LSM label of a process: /proc/PID/attr/current (SELinux) or attr/apparmor/current. */
export function procLabel(pid: number, mode: LabMode = 'selinux'): string {
  const file = mode === 'apparmor' ? `/proc/${pid}/attr/apparmor/current` : `/proc/${pid}/attr/current`;
  return readTrim(file) ?? '';
}

export interface Context {
  readonly user: string;
  readonly role: string;
  readonly type: string;
  readonly level: string;
}

export function parseContext(text: string): Context {
  const [user = '', role = '', type = '', ...rest] = text.split(':');
  return { user, role, type, level: rest.join(':') };
}

/** pid and uuid of a running guest, from the store. */
export function guest(dir: string, name: string): { pid: number; uuid: string; qmp: string } {
  const row = readRunning(dir).find((r) => r.name === name);
  if (row?.pid === undefined || row.pid === null) throw new Error(`guest ${name} has no running record with a pid`);
  return { pid: row.pid, uuid: row.uuid, qmp: join(dir, 'run', 'monitor', `${row.uuid}.sock`) };
}

export function alive(pid: number): boolean {
  const st = readTrim(`/proc/${pid}/stat`);
  // a zombie is not alive
  return st !== undefined && !/^\d+ \(.*\) Z /.test(st);
}

/** Every live qemu-system process (pid and argv), to prove nothing was left behind. */
export function qemuProcesses(): { pid: number; cmdline: string }[] {
  const out: { pid: number; cmdline: string }[] = [];
  const r = run('ps', ['-e', '-o', 'pid=,comm=']);
  for (const line of r.out.split('\n')) {
    const m = /^\s*(\d+)\s+(qemu-system\S*)/.exec(line);
    if (m?.[1] !== undefined && alive(Number(m[1])))
      out.push({ pid: Number(m[1]), cmdline: readTrim(`/proc/${m[1]}/cmdline`) ?? '' });
  }
  return out;
}

/**
 * The kernel log since a mark: SELinux AVC denials and AppArmor audit records are printed
 * there (no auditd in the lab). `mark()` is the timestamp of the last line so far;
 * `since(mark)` gives the lines stamped after it (robust to the ring buffer wrapping).
 */
export const kernelLog = {
  lines(): { ts: number; text: string }[] {
    const out: { ts: number; text: string }[] = [];
    for (const text of run('dmesg', []).out.split('\n')) {
      const m = /^\[\s*(\d+\.\d+)\]/.exec(text);
      if (m?.[1] !== undefined) out.push({ ts: Number(m[1]), text });
    }
    return out;
  },
  mark(): number {
    return this.lines().at(-1)?.ts ?? 0;
  },
  since(mark: number): string[] {
    return this.lines()
      .filter((l) => l.ts > mark)
      .map((l) => l.text);
  },
};

/** SELinux AVC denials since `cursor` that match every given `key=value` (or `{ perm }`) fragment. */
export function avcDenials(cursor: number, ...fragments: string[]): string[] {
  return kernelLog.since(cursor).filter((l) => /avc:\s+denied/.test(l) && fragments.every((f) => l.includes(f)));
}

/** AppArmor DENIED audit lines since `cursor` matching every fragment. */
export function apparmorDenials(cursor: number, ...fragments: string[]): string[] {
  return kernelLog.since(cursor).filter((l) => l.includes('apparmor="DENIED"') && fragments.every((f) => l.includes(f)));
}

/** Waits until `fn` returns something non-empty (the kernel log is written asynchronously). */
export async function eventually<T>(fn: () => T[], timeoutMs = 3000): Promise<T[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v.length > 0 || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const SOCKCREATE = '/proc/thread-self/attr/sockcreate';

/** One write to a /proc attr file, opened O_WRONLY alone (O_CREAT there is an audited create). */
function writeAttr(path: string, value: string): void {
  const fd = openSync(path, constants.O_WRONLY);
  try {
    writeSync(fd, value);
  } finally {
    closeSync(fd);
  }
}

/**
 * Connects to a guest's QMP socket. Under SELinux the server side of an accepted UNIX
 * connection gets QEMU's type at the *client's* level (s0-s0:c0.c1023 for an administrator),
 * which the MCS constraint forbids svirt_t:s0:cA,cB to write to: QEMU could then never
 * answer. As libvirt does (virSecuritySELinuxSetDaemonSocketLabel), the client socket is
 * created at the guest's level: our own context with the level of the socket file.
 */
export async function qmpConnect(path: string): Promise<QmpClient> {
  const label = existsSync('/sys/fs/selinux/enforce') ? fileContext(path) : '';
  if (label === '') return QmpClient.connect(path, 15_000);
  const own = parseContext(readTrim('/proc/self/attr/current') ?? '');
  writeAttr(SOCKCREATE, `${own.user}:${own.role}:${own.type}:${parseContext(label).level}`);
  // QmpClient.connect creates the socket synchronously, before its first await
  const pending = QmpClient.connect(path, 15_000);
  writeAttr(SOCKCREATE, '\n');
  return pending;
}

/**
 * `qemu-io` on a guest disk through HMP. Its output is not evidence: qemu-io prints errors on
 * QEMU's stderr, which under SELinux is not even open (see docs/lab.md), so callers check
 * the image file itself (imageBytes).
 */
export function qemuIo(q: QmpClient, dev: string, cmd: string): Promise<string> {
  // a virtio-blk disk's block backend hangs off its virtio-backend child; a SCSI disk's off itself
  const qom = dev.startsWith('vd') ? `/machine/peripheral/disk-${dev}/virtio-backend` : `/machine/peripheral/disk-${dev}`;
  return q.hmp(`qemu-io -d ${qom} "${cmd}"`);
}

/** `len` bytes of a file at `offset`, read by the test (not by QEMU). */
export function imageBytes(path: string, offset: number, len: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, offset);
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** Whether every byte of `buf` is `value`. */
export function filledWith(buf: Buffer, value: number): boolean {
  return buf.every((b) => b === value);
}

/** blockdev-add of a file: the compromised-monitor way of opening any path. */
export async function openThroughMonitor(q: QmpClient, path: string, node: string, readOnly: boolean): Promise<string> {
  try {
    await q.execute('blockdev-add', { driver: 'file', filename: path, 'node-name': node, 'read-only': readOnly });
    await q.execute('blockdev-del', { 'node-name': node }).catch(() => undefined);
    return 'opened';
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
