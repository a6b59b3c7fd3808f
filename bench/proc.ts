import { spawn, type SpawnOptions } from 'node:child_process';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { isAlive, processStartTime, type ProcessIdentity } from '../src/host/proc.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Timed {
  /** Wall time from spawn() to the exit event, in ms. */
  readonly ms: number;
  /** Absolute time of the exit event (performance.timeOrigin + now), comparable across threads. */
  readonly endAt: number;
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs argv (no shell), timed from spawn to exit. With `check`, a non-zero exit throws with stderr. */
export function runTimed(
  argv: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; check?: boolean; cwd?: string } = {},
): Promise<Timed> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error('runTimed: empty argv');
  const o: SpawnOptions = { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env };
  if (opts.cwd !== undefined) o.cwd = opts.cwd;
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, o);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code, sig) => {
      const ms = performance.now() - t0;
      const endAt = performance.timeOrigin + performance.now();
      // 'exit' may come before the pipes drain: wait for 'close' for the text, keep the exit time.
      child.on('close', () => {
        const r = { ms, endAt, code: code ?? (sig ? 128 : 1), stdout, stderr };
        if (opts.check === true && r.code !== 0) {
          reject(new Error(`${argv.join(' ')} failed (${r.code}): ${stderr.trim() || stdout.trim()}`));
        } else resolve(r);
      });
    });
  });
}

/** Polls `cond` every `pollMs` until true; resolves with the ms waited, rejects on timeout. */
export async function waitUntil(cond: () => boolean, timeoutMs: number, what: string, pollMs = 1): Promise<number> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(pollMs);
  }
  return performance.now() - t0;
}

export function identity(pid: number): ProcessIdentity | undefined {
  const startTime = processStartTime(pid);
  return startTime === undefined ? undefined : { pid, startTime };
}

/** Fields of /proc/PID/status in kB (VmRSS, VmHWM, ...), or undefined when gone. */
export function statusKb(pid: number, field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined; // gone
  }
}

/** Proportional set size (shared pages divided among their users), kB. */
export function pssKb(pid: number): number | undefined {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined; // gone, or no smaps_rollup
  }
}

/**
 * Everything the bench starts and must not leave behind: processes (killed by pid, only
 * while the pid still names the process we recorded) and scratch dirs.
 */
export class Janitor {
  private readonly procs = new Map<number, ProcessIdentity>();
  private readonly dirs: string[] = [];
  private readonly hooks: (() => Promise<void> | void)[] = [];

  track(id: ProcessIdentity | undefined): void {
    if (id) this.procs.set(id.pid, id);
  }

  untrack(pid: number): void {
    this.procs.delete(pid);
  }

  dir(path: string): string {
    this.dirs.push(path);
    return path;
  }

  /** Runs before processes are killed (e.g. destroy guests through the Hypervisor). */
  onCleanup(fn: () => Promise<void> | void): void {
    this.hooks.push(fn);
  }

  /** Processes still alive among those tracked. */
  leftovers(): ProcessIdentity[] {
    return [...this.procs.values()].filter((p) => isAlive(p));
  }

  async cleanup(): Promise<string[]> {
    const notes: string[] = [];
    for (const fn of this.hooks.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        notes.push(`cleanup step failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    for (const p of this.leftovers()) {
      notes.push(`killed leftover process ${p.pid}`);
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // gone meanwhile: nothing to kill
      }
    }
    this.procs.clear();
    for (const d of this.dirs.splice(0).reverse()) rmSync(d, { recursive: true, force: true });
    return notes;
  }
}

/** Every process's children, from one pass over /proc/PID/stat (parent pid is field 4). */
export function childrenByParent(): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // comm (field 2) may hold spaces and parentheses: the fields after it follow the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = out.get(ppid) ?? [];
    list.push(Number(name));
    out.set(ppid, list);
  }
  return out;
}
