import { existsSync, readFileSync } from 'node:fs';
import { SvirtError } from '../errors.js';
import { endProcess, processStartTime, waitGone, type ProcessIdentity } from '../host/proc.js';
import type { LineChannel } from '../host/fd-channel.js';
import { childSocket, spawnProgram, type ChildSocket } from '../host/spawn.js';
import type { ConfinementSpec } from '../security/confinement.js';
import { SPEC_FD, type FdLayout } from './fd-layout.js';
import { QmpClient } from './qmp-client.js';

export interface LaunchRequest {
  readonly monitorPath: string;
  /** QEMU's argv; argv[0] is the binary. */
  readonly argv: readonly string[];
  readonly spec: ConfinementSpec;
  /** Every fd QEMU inherits (images, chardev files, the monitor socket, a saved state). */
  readonly layout: FdLayout;
  /** stderr of the launcher and QEMU (opened by svirt, so QEMU needs no path to it). */
  readonly logFd: number;
  readonly logPath: string;
  readonly qmpPath: string;
  /** The socket-create label for svirt's end of the monitor connection (SELinux). */
  readonly socketLabel?: string;
  /** What the monitor runs once QEMU has exited (svirt's reconcile). */
  readonly hook: readonly string[];
  /** `svirt serve`'s notify socket: the monitor tells it first, and runs the hook only if it does not answer. */
  readonly notify?: string;
  readonly timeoutMs: number;
  /** The guest's cgroup2 dir, if it has one: svirt-monitor creates QEMU's child in it (clone3), without the wait a later join has. */
  readonly cgroup2?: string;
  /** Ptys the monitor relays (master, and its end of QEMU's chardev socket); QEMU gets neither. */
  readonly relays?: readonly { readonly pty: number; readonly sock: number }[];
  /** Called once the monitor is spawned (it holds the inherited fds from then on). */
  readonly spawned?: () => void;
}

export interface Launched {
  readonly pid: number;
  readonly startTime: number;
  readonly monitorPid: number;
  readonly qmp: QmpClient;
}

/** Exit statuses of the confinement steps (svirt-exec's, run by the monitor's child), by step (docs/native.md). */
export const EXEC_STEPS: Readonly<Record<number, string>> = {
  201: 'spec',
  202: 'rlimits',
  203: 'mountview',
  204: 'ids',
  205: 'nonewprivs',
  206: 'selinux',
  207: 'apparmor',
  208: 'landlock',
  209: 'fds',
  210: 'exec',
  211: 'userroot',
  212: 'cgroup',
};

/**
 * Starts QEMU under the per-guest monitor, whose child confines itself with svirt-exec's steps
 * (svirt-monitor --spec-fd, native/confine.c) and execs QEMU, and waits for its QMP
 * greeting. If the launcher or QEMU fails first, the error names the step and carries the
 * last lines of the log.
 */
export async function launch(req: LaunchRequest): Promise<Launched> {
  // The relayed fds come after QEMU's: not in the spec's keep list, so QEMU never has them.
  const relays = req.relays ?? [];
  const first = SPEC_FD + 1 + req.layout.fds.length;
  const args = [
    ...req.hook.flatMap((a) => ['--hook', a]),
    ...(req.notify !== undefined ? ['--notify', req.notify] : []),
    ...relays.flatMap((_, i) => ['--relay', `${first + 2 * i},${first + 2 * i + 1}`]),
    ...(req.cgroup2 !== undefined ? ['--cgroup2', req.cgroup2] : []),
    '--spec-fd',
    String(SPEC_FD),
    '--',
    ...req.argv,
  ];
  const out = childSocket();
  const specIn = childSocket();
  let monitorPid: number;
  try {
    monitorPid = spawnProgram(req.monitorPath, {
      args,
      detached: true,
      fds: ['ignore', out.child, req.logFd, specIn.child, ...req.layout.fds, ...relays.flatMap((r) => [r.pty, r.sock])],
      env: guestEnvironment(process.env),
      onExit: (s) => status.monitorExited(s), // called from the event loop: status is set by then
    });
  } catch (err) {
    out.close();
    specIn.close();
    const why = err instanceof Error ? err.message : String(err);
    throw new SvirtError('SVIRT_ERR_NATIVE', `cannot run svirt-monitor: ${why}`, { cause: err });
  }
  out.spawned();
  specIn.spawned();
  // The spec first: the monitor's child waits for it before QEMU's exec; the monitor's status is read after.
  specIn.feed(JSON.stringify(req.spec));
  req.spawned?.();
  const status = statusReader(out);
  const stdout = status.channel;

  let pid: number;
  try {
    pid = await status.pid;
  } catch (err) {
    stdout.close(); // the monitor died or said why: nothing more to read
    throw err;
  }
  const startTime = processStartTime(pid) ?? 0;
  try {
    return await waitReady(req, status, stdout, monitorPid, pid, startTime);
  } catch (err) {
    // QEMU must not outlive a failed start: it would keep its images open after the labels
    // are restored and its reservation released.
    // Through a pidfd once its identity is checked; the start's own error is the one reported.
    if (startTime !== 0) await endProcess({ pid, startTime }, 0, 'QEMU process').catch(() => undefined);
    stdout.close();
    throw err;
  }
}

async function waitReady(
  req: LaunchRequest,
  status: StatusReader,
  stdout: LineChannel,
  monitorPid: number,
  pid: number,
  startTime: number,
): Promise<Launched> {
  const deadline = Date.now() + req.timeoutMs;
  for (;;) {
    const exited = status.exit();
    if (exited !== undefined) throw exitError(exited, req.logPath);
    if (existsSync(req.qmpPath)) {
      try {
        const qmp = await QmpClient.connect(req.qmpPath, Math.max(100, deadline - Date.now()), req.socketLabel);
        stdout.close();
        return { pid, startTime, monitorPid, qmp };
      } catch (err) {
        // The socket exists but QEMU is not listening yet, or it died: look again.
        const late = status.exit();
        if (late !== undefined) throw exitError(late, req.logPath);
        if (Date.now() > deadline) throw err;
      }
    }
    if (Date.now() > deadline) {
      throw new SvirtError('SVIRT_ERR_TIMEOUT', `QEMU did not open its monitor "${req.qmpPath}" within ${req.timeoutMs} ms`, {
        details: { pid, log: logTail(req.logPath) },
      });
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * The environment of the monitor, the launcher and QEMU: a fixed PATH and svirt's own
 * settings (the reconcile hook needs them), nothing else of the caller's — secrets in an
 * admin's environment have no business in a guest's QEMU, and NODE_EXTRA_CA_CERTS alone
 * costs the hook ~40 ms.
 */
export function guestEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };
  for (const [k, v] of Object.entries(env))
    if (k.startsWith('SVIRT_') && k !== 'SVIRT_TEST_CRASH_AT' && k !== 'SVIRT_TRACE_STEPS' && v !== undefined) out[k] = v;
  return out;
}

interface StatusReader {
  readonly pid: Promise<number>;
  exit(): string | undefined;
  /** The monitor itself exited (its status, `exit N` or `signal S`). */
  monitorExited(status: string): void;
}

/** Parses the monitor's status lines: `pid N`, then `exit N` / `signal N` / `error ...`. */
function statusReader(out: ChildSocket): StatusReader & { readonly channel: LineChannel } {
  let exit: string | undefined;
  let resolvePid: (pid: number) => void = () => undefined;
  let rejectPid: (err: Error) => void = () => undefined;
  const pid = new Promise<number>((resolve, reject) => {
    resolvePid = resolve;
    rejectPid = reject;
  });
  let monitorStatus: string | undefined; // how the monitor exited, once the event loop has said
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  const died = (): SvirtError =>
    new SvirtError(
      'SVIRT_ERR_NATIVE',
      monitorStatus === undefined ? 'svirt-monitor exited before starting QEMU' : `svirt-monitor exited: ${monitorStatus}`,
    );
  const channel = out.lines({
    onLine(line) {
      if (line.startsWith('pid ')) resolvePid(Number(line.slice(4)));
      else {
        exit = line;
        if (line.startsWith('error '))
          rejectPid(new SvirtError('SVIRT_ERR_QEMU_START', `the monitor could not start the launcher: ${line.slice(6)}`));
      }
    },
    // The monitor's status pipe closed (or was reset by a dying monitor) before it named QEMU's
    // pid: it died, and its exit status says how. A no-op once the pid is known, or once its
    // own `error ...` line has said why.
    onEnd() {
      channel.close(); // nothing comes after EOF: the fd goes now, not at the caller's close
      closed = true;
      clearTimeout(timer);
      rejectPid(died());
    },
    maxLine: 4096, // the monitor writes a few short lines
    tooLong: () => new SvirtError('SVIRT_ERR_NATIVE', 'svirt-monitor wrote a status line longer than 4096 bytes'),
  });
  return {
    pid,
    channel,
    exit: () => exit,
    monitorExited(s) {
      if (exit !== undefined || s === 'exit 0') return;
      monitorStatus = s;
      // Its exit can be seen before the lines it wrote first are read: an `error ...` line says
      // more than the status, so the pipe's close decides (200 ms at most, if something else
      // still holds the pipe).
      if (closed) return rejectPid(died());
      timer = setTimeout(() => rejectPid(died()), 200);
    },
  };
}

function exitError(status: string, logPath: string): SvirtError {
  const tail = logTail(logPath);
  const code = /^exit (\d+)$/.exec(status);
  const step = code ? EXEC_STEPS[Number(code[1])] : undefined;
  const launcherLine = tail
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('svirt-exec: '));
  if (step !== undefined) {
    return new SvirtError('SVIRT_ERR_CONFINE', `confinement step '${step}' failed: ${launcherLine?.slice(12) ?? status}`, {
      details: { step, status, log: tail },
    });
  }
  const qemuLine =
    qemuLastWords(tail) ||
    (tail
      .split('\n')
      .filter((l) => l.trim() !== '')
      .slice(-1)[0] ??
      '');
  return new SvirtError('SVIRT_ERR_QEMU_EXITED', `QEMU exited during start (${status}): ${qemuLine}`, {
    details: { status, log: tail },
  });
}

/** QEMU's own last two messages in a log tail, without its timestamps, joined with '; ' ('' when none). */
export function qemuLastWords(tail: string): string {
  return tail
    .split('\n')
    .filter((l) => l.includes('qemu-system'))
    .slice(-2)
    .map((l) => l.replace(/^\S+Z (?=qemu-system)/, ''))
    .join('; ');
}

export function logTail(path: string, lines = 8): string {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .slice(-lines - 1)
      .join('\n')
      .trim();
  } catch {
    return ''; // no log yet: nothing to show
  }
}

/**
 * A QMP call that broke because QEMU exited (ECONNRESET, a closed monitor) says nothing: QEMU's
 * own last words in its log say why (a saved state that does not fit, a device it refused).
 */
export async function qemuExitReason(err: unknown, qemu: ProcessIdentity, logPath: string): Promise<unknown> {
  if (err instanceof SvirtError && err.code !== 'SVIRT_ERR_INTERNAL' && err.code !== 'SVIRT_ERR_QMP') return err;
  if (!(await waitGone(qemu, 1000, 5))) return err;
  const why = qemuLastWords(logTail(logPath));
  return new SvirtError('SVIRT_ERR_QEMU_EXITED', `QEMU exited during start: ${why || String(err)}`, { cause: err });
}
