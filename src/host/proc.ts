import { closeSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { SvirtError, errnoOf } from '../errors.js';
import { pidfdOpen, pidfdSignal, procStartTimeNative, watchClose, watchReadable, type WatchHandle } from './native.js';

/** A process identity that survives pid reuse: pid + start time (clock ticks since boot). */
export interface ProcessIdentity {
  readonly pid: number;
  readonly startTime: number;
}

/**
 * The start time of `pid` from /proc/PID/stat (field 22), or undefined when it is gone (or a
 * zombie). Read in C (native/proc-stat.c): reconcile reads one per running guest on every
 * command, and the C read costs half of a fresh Node's readFileSync and parse (issue 17).
 */
export function processStartTime(pid: number): number | undefined {
  const start = procStartTimeNative(pid);
  return start < 0 ? undefined : start;
}

/** True when the process that had this identity still runs (and is not a zombie). */
export function isAlive(id: ProcessIdentity): boolean {
  return processStartTime(id.pid) === id.startTime;
}

export function selfIdentity(): ProcessIdentity {
  const startTime = processStartTime(process.pid);
  if (startTime === undefined) throw new Error('cannot read /proc/self/stat');
  return { pid: process.pid, startTime };
}

/** Fields of /proc/PID/status (Uid, Gid, Groups, CapEff, NoNewPrivs, ...), or undefined when gone. */
export function processStatus(pid: number): Map<string, string> | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined; // gone
  }
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) fields.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return fields;
}

/**
 * A process held by a pidfd, opened and then checked to be `id` (pid + start time): signals and
 * the wait for its exit go to that process, never to another that reused its pid, and the exit
 * is seen when it happens (the pidfd becomes readable), not at the next poll.
 */
export interface HeldProcess {
  /** Sends `sig`; false when the process has exited. */
  signal(sig: NodeJS.Signals): boolean;
  /** Resolves true once the process has exited (a zombie counts: its files are closed), false after `timeoutMs`. */
  exited(timeoutMs: number): Promise<boolean>;
  close(): void;
}

/** The process `id`, held; undefined when it is gone (or a zombie, or its pid is another process's now). */
export function holdProcess(id: ProcessIdentity): HeldProcess | undefined {
  let fd: number;
  try {
    fd = pidfdOpen(id.pid);
  } catch (err) {
    if (errnoOf(err) === 'ESRCH') return undefined;
    throw err;
  }
  if (processStartTime(id.pid) !== id.startTime) {
    closeSync(fd);
    return undefined;
  }
  let closed = false;
  return {
    signal: (sig) => pidfdSignal(fd, constants.signals[sig]),
    exited: (timeoutMs) =>
      new Promise<boolean>((resolve) => {
        let watch: WatchHandle | undefined;
        const timer = setTimeout(() => {
          if (watch !== undefined) watchClose(watch);
          resolve(false);
        }, timeoutMs);
        watch = watchReadable(fd, () => {
          clearTimeout(timer);
          if (watch !== undefined) watchClose(watch);
          resolve(true);
        });
      }),
    close: () => {
      if (!closed) closeSync(fd);
      closed = true;
    },
  };
}

/**
 * Ends process `id` through a pidfd (holdProcess): SIGTERM and up to `graceMs` for it to exit
 * (none when 0), then SIGKILL and up to 10 s; `what` names it in the timeout's error. A process
 * already gone, or whose pid another process has now, is left alone.
 */
export async function endProcess(id: ProcessIdentity, graceMs: number, what: string): Promise<void> {
  const p = holdProcess(id);
  if (p === undefined) return;
  try {
    if (!p.signal(graceMs > 0 ? 'SIGTERM' : 'SIGKILL')) return;
    if (graceMs > 0 && (await p.exited(graceMs))) return;
    p.signal('SIGKILL');
    if (!(await p.exited(10_000))) {
      throw new SvirtError('SVIRT_ERR_TIMEOUT', `${what} ${id.pid} did not exit after SIGKILL`);
    }
  } finally {
    p.close();
  }
}

/** Waits until the process is gone, polling; true if it went within the timeout. */
export async function waitGone(id: ProcessIdentity, timeoutMs: number, pollMs = 10): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(id)) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, pollMs));
  }
  return true;
}

/** Sends a signal; a process already gone is not an error. */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}
