import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { QmpCommandError, type QmpClient } from '../qemu/qmp-client.js';

/** What one attack did: the kernel (or QEMU) refused it, or it got through. */
export type Outcome =
  | { readonly result: 'denied'; readonly detail: string }
  | { readonly result: 'allowed'; readonly detail: string }
  | { readonly result: 'error'; readonly detail: string };

/** Everything an attack may use: A's monitor, B's files, a probe inside A's confinement. */
export interface AttackTarget {
  readonly qmpA: QmpClient;
  readonly diskB: string;
  /** B's UEFI nvram, when this host has OVMF (Debian package ovmf) for the guests to use. */
  readonly nvramB?: string;
  readonly runtimeDirB: string;
  readonly qmpPathB: string;
  /** B's VNC socket and guest-agent socket (in B's runtime dir). */
  readonly vncSocketB: string;
  readonly agentSocketB: string;
  /** B's pty (its serial console, /dev/pts/N from its live XML). */
  readonly ptyB: string;
  readonly pidB: number;
  /** B's passt helper (its user NIC), when B has one (network-attacks.ts). */
  readonly passtPidB?: number;
  /** B's swtpm state file (B has a TPM). */
  readonly tpmStateB: string;
  /** A file in the folder B shares with virtiofs. */
  readonly shareFileB: string;
  /** A loopback TCP port the matrix listens on. */
  readonly tcpPort: number;
  /** Where host-path attacks write (outside every guest's dirs). */
  readonly hostDir: string;
  /**
   * A device node outside A's device list (/dev/zero's number) that DAC and Landlock both let A
   * open: owned by A's uid, in A's own runtime dir. Only the cgroup's device list stands in the way.
   */
  readonly deviceNodeA?: string;
  /** Runs `svirt-probe ARGS` inside A's confinement (same uid, Landlock domain, namespaces). */
  readonly probe: (args: readonly string[]) => Promise<{ code: number; out: string }>;
}

export interface Attack {
  readonly id: string;
  readonly title: string;
  run(t: AttackTarget): Promise<Outcome>;
}

/** A fresh QMP node/chardev id. */
function nodeName(): string {
  return `atk${randomBytes(4).toString('hex')}`;
}

/** A QMP command that opens a host resource: an error naming EACCES/EPERM is a denial. */
export async function qmpAttempt(q: QmpClient, cmd: string, args: Record<string, unknown>): Promise<Outcome> {
  try {
    await q.execute(cmd, args);
    return { result: 'allowed', detail: `${cmd} succeeded` };
  } catch (err) {
    if (err instanceof QmpCommandError) {
      if (/Permission denied|Operation not permitted/i.test(err.message))
        return { result: 'denied', detail: shortReason(err.message) };
      // Targets exist on the host; not finding one means the guest's private view hides it.
      if (/No such file or directory/i.test(err.message)) return { result: 'denied', detail: 'ENOENT: hidden' };
      return { result: 'error', detail: shortReason(err.message) };
    }
    return { result: 'error', detail: err instanceof Error ? err.message : String(err) };
  }
}

function shortReason(msg: string): string {
  if (/Permission denied/i.test(msg)) return 'EACCES';
  if (/Operation not permitted/i.test(msg)) return 'EPERM';
  if (/No such file or directory/i.test(msg)) return 'ENOENT';
  return msg.replace(/^QMP \S+ failed: /, '').slice(0, 60);
}

/** A chardev that writes to `path`: allowed only if the file really appears. */
async function chardevFile(t: AttackTarget, path: string): Promise<Outcome> {
  const id = nodeName();
  const out = await qmpAttempt(t.qmpA, 'chardev-add', { id, backend: { type: 'file', data: { out: path } } });
  const created = existsSync(path);
  if (created) rmSync(path, { force: true });
  if (out.result === 'allowed') {
    await t.qmpA.execute('chardev-remove', { id }).catch(() => undefined);
    return created ? { result: 'allowed', detail: `created ${path}` } : { result: 'error', detail: 'chardev added but no file' };
  }
  return out;
}

/** A chardev connecting to a UNIX socket of B's: allowed when QEMU got a connection. */
async function socketChardev(t: AttackTarget, path: string): Promise<Outcome> {
  const id = nodeName();
  const out = await qmpAttempt(t.qmpA, 'chardev-add', {
    id,
    backend: { type: 'socket', data: { addr: { type: 'unix', data: { path } }, server: false } },
  });
  if (out.result === 'allowed') await t.qmpA.execute('chardev-remove', { id }).catch(() => undefined);
  return out;
}

/** A serial (tty) chardev on B's pty: A would read what B's console user types and write to it. */
async function ttyChardev(t: AttackTarget, path: string): Promise<Outcome> {
  const id = nodeName();
  const out = await qmpAttempt(t.qmpA, 'chardev-add', { id, backend: { type: 'serial', data: { device: path } } });
  if (out.result === 'allowed') await t.qmpA.execute('chardev-remove', { id }).catch(() => undefined);
  return out;
}

export async function probeAttempt(t: AttackTarget, args: readonly string[]): Promise<Outcome> {
  const r = await t.probe(args);
  if (r.code === 0) return { result: 'allowed', detail: `${args[0]} succeeded` };
  if (r.code === 1) return { result: 'denied', detail: r.out.replace(/^errno /, '').trim() };
  return { result: 'error', detail: `probe exit ${r.code}: ${r.out.trim().slice(0, 80)}` };
}

/** The attacks of DESIGN §1, in the order they run (migrate last: a sandboxed QEMU dies of it). */
export const ATTACKS: readonly Attack[] = [
  {
    id: 'disk-b-rw',
    title: "open B's disk read-write (blockdev-add)",
    run: (t) =>
      qmpAttempt(t.qmpA, 'blockdev-add', { driver: 'file', filename: t.diskB, 'node-name': nodeName(), 'read-only': false }),
  },
  {
    id: 'disk-b-ro',
    title: "open B's disk read-only (blockdev-add)",
    run: (t) =>
      qmpAttempt(t.qmpA, 'blockdev-add', { driver: 'file', filename: t.diskB, 'node-name': nodeName(), 'read-only': true }),
  },
  {
    id: 'nvram-b',
    title: "open B's UEFI nvram read-write (blockdev-add)",
    run: (t) =>
      t.nvramB === undefined
        ? Promise.resolve({ result: 'error', detail: 'no OVMF here (Debian package ovmf)' })
        : qmpAttempt(t.qmpA, 'blockdev-add', { driver: 'file', filename: t.nvramB, 'node-name': nodeName(), 'read-only': false }),
  },
  {
    id: 'shadow',
    title: 'read /etc/shadow (blockdev-add)',
    run: (t) =>
      qmpAttempt(t.qmpA, 'blockdev-add', { driver: 'file', filename: '/etc/shadow', 'node-name': nodeName(), 'read-only': true }),
  },
  {
    id: 'tpm-state-b',
    title: "read B's swtpm state (blockdev-add)",
    run: (t) =>
      qmpAttempt(t.qmpA, 'blockdev-add', { driver: 'file', filename: t.tpmStateB, 'node-name': nodeName(), 'read-only': true }),
  },
  {
    id: 'share-b',
    title: "read a file of B's shared folder (blockdev-add)",
    run: (t) =>
      qmpAttempt(t.qmpA, 'blockdev-add', { driver: 'file', filename: t.shareFileB, 'node-name': nodeName(), 'read-only': true }),
  },
  {
    id: 'write-etc',
    title: 'create a file in /etc (file chardev)',
    run: (t) => chardevFile(t, `/etc/svirt-attack-${process.pid}-${Date.now()}`),
  },
  {
    id: 'write-runtime-b',
    title: "create a file in B's runtime dir (file chardev)",
    run: (t) => chardevFile(t, join(t.runtimeDirB, `attack-${Date.now()}`)),
  },
  {
    id: 'dump-memory',
    title: 'dump guest memory to a host path',
    run: async (t) => {
      const path = join(t.hostDir, `dump-${Date.now()}`);
      const out = await qmpAttempt(t.qmpA, 'dump-guest-memory', { paging: false, protocol: `file:${path}` });
      const created = existsSync(path);
      rmSync(path, { force: true });
      if (out.result === 'allowed' && !created) return { result: 'error', detail: 'dump reported success but wrote nothing' };
      return out;
    },
  },
  {
    id: 'qmp-b',
    title: "connect to B's QMP socket (socket chardev)",
    run: async (t) => {
      const id = nodeName();
      const out = await qmpAttempt(t.qmpA, 'chardev-add', {
        id,
        backend: { type: 'socket', data: { addr: { type: 'unix', data: { path: t.qmpPathB } }, server: false } },
      });
      if (out.result === 'allowed') await t.qmpA.execute('chardev-remove', { id }).catch(() => undefined);
      return out;
    },
  },
  {
    id: 'vnc-b',
    title: "connect to B's VNC socket (socket chardev)",
    run: (t) => socketChardev(t, t.vncSocketB),
  },
  {
    id: 'agent-b',
    title: "connect to B's guest-agent socket (socket chardev)",
    run: (t) => socketChardev(t, t.agentSocketB),
  },
  {
    id: 'pty-b',
    title: "open B's pty, its serial console (serial chardev)",
    run: (t) => ttyChardev(t, t.ptyB),
  },
  {
    id: 'tcp',
    title: 'TCP connect to a loopback port (socket chardev)',
    run: async (t) => {
      const id = nodeName();
      const out = await qmpAttempt(t.qmpA, 'chardev-add', {
        id,
        backend: {
          type: 'socket',
          data: { addr: { type: 'inet', data: { host: '127.0.0.1', port: String(t.tcpPort) } }, server: false },
        },
      });
      if (out.result === 'allowed') await t.qmpA.execute('chardev-remove', { id }).catch(() => undefined);
      return out;
    },
  },
  {
    id: 'environ-b',
    title: "read /proc/<B's pid>/environ",
    run: (t) => probeAttempt(t, ['read', `/proc/${t.pidB}/environ`]),
  },
  {
    id: 'signal-b',
    title: "signal B's QEMU (SIGCONT)",
    run: (t) => probeAttempt(t, ['kill', String(t.pidB), '18']),
  },
  {
    id: 'device-node',
    title: "open a device node outside A's device list (A's own, in its dir)",
    run: async (t) => {
      if (t.deviceNodeA === undefined) return { result: 'error', detail: 'no device node (needs root)' };
      const id = nodeName();
      const out = await qmpAttempt(t.qmpA, 'chardev-add', { id, backend: { type: 'file', data: { out: t.deviceNodeA } } });
      if (out.result === 'allowed') await t.qmpA.execute('chardev-remove', { id }).catch(() => undefined);
      return out;
    },
  },
  {
    id: 'migrate-exec',
    title: 'run a host command (migrate "exec:")',
    run: async (t) => {
      const marker = join(t.hostDir, `exec-${Date.now()}`);
      try {
        await t.qmpA.execute('migrate', { uri: `exec:touch ${marker}` });
      } catch (err) {
        if (!(err instanceof QmpCommandError)) {
          // The connection died: QEMU's seccomp filter killed it for trying to fork.
          const ran = existsSync(marker);
          rmSync(marker, { force: true });
          return ran ? { result: 'allowed', detail: 'command ran' } : { result: 'denied', detail: 'seccomp killed QEMU' };
        }
        return { result: 'denied', detail: shortReason(err.message) };
      }
      await new Promise((r) => setTimeout(r, 300));
      const ran = existsSync(marker);
      rmSync(marker, { force: true });
      return ran ? { result: 'allowed', detail: 'command ran' } : { result: 'denied', detail: 'command did not run' };
    },
  },
];

/** Runs `svirt-probe` under svirt-exec with a given spec JSON; resolves with its exit code and stdout. */
export function runConfined(execPath: string, specJson: string, argv: readonly string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(execPath, ['--spec-fd', '3', '--', ...argv], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, out }));
    (child.stdio[3] as NodeJS.WritableStream).end(specJson);
  });
}
