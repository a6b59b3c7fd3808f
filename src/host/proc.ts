import { readFileSync } from 'node:fs';
import { procStartTimeNative } from './native.js';

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
