/**
 * How the bench starts raw QEMU and raw passt: the way svirt starts its own children
 * (src/host/spawn.ts, posix_spawn), so the baseline pays no fork of the bench's large Node
 * process that svirt does not pay either, and svirt's ratio to it is svirt's own cost.
 */
import { spawnProgram } from '../src/host/spawn.js';

export interface RawChild {
  readonly pid: number;
  /** `exit N` / `signal S` once it has exited (and been reaped). */
  status(): string | undefined;
  /** Resolves when it has exited; until then it keeps the event loop alive, as a ChildProcess does. */
  readonly gone: Promise<void>;
  kill(signal: NodeJS.Signals): void;
}

/** Spawns `path` with exactly `fds` (fd i = fds[i]); throws when it cannot run. */
export function spawnRaw(path: string, args: readonly string[], fds: readonly (number | 'ignore')[]): RawChild {
  let status: string | undefined;
  let done: () => void = () => undefined;
  const gone = new Promise<void>((resolve) => (done = resolve));
  const keep = setInterval(() => undefined, 60_000);
  let pid: number;
  try {
    pid = spawnProgram(path, {
      args,
      env: process.env,
      fds,
      onExit: (s) => {
        status = s;
        clearInterval(keep);
        done();
      },
    });
  } catch (err) {
    clearInterval(keep);
    throw err;
  }
  return {
    pid,
    status: () => status,
    gone,
    kill: (signal) => {
      if (status === undefined) process.kill(pid, signal);
    },
  };
}
