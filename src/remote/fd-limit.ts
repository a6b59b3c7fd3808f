/**
 * The open-file limit of `svirt serve`. Node cannot call setrlimit, so the server asks
 * util-linux's `prlimit --pid` to raise its own limit (prlimit(2) on another process: as
 * root, with CAP_SYS_RESOURCE, the hard limit too; otherwise the soft one up to the hard).
 * Where that fails the server runs with what it has and fits its client limits to it.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface NofileLimit {
  readonly soft: number;
  readonly hard: number;
}

/** RLIMIT_NOFILE of a process, from /proc/PID/limits ("unlimited" is Infinity). */
export function readNofile(pid: number | 'self' = 'self'): NofileLimit {
  const text = readFileSync(`/proc/${pid}/limits`, 'utf8');
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  const num = (s: string | undefined): number => (s === undefined || s === 'unlimited' ? Infinity : Number(s));
  return { soft: num(m?.[1]), hard: num(m?.[2]) };
}

/** The kernel's ceiling for RLIMIT_NOFILE (fs.nr_open). */
function nrOpen(): number {
  try {
    return Number(readFileSync('/proc/sys/fs/nr_open', 'utf8').trim()) || 1024 * 1024;
  } catch {
    return 1024 * 1024; // the kernel's default
  }
}

/**
 * Raises this process's soft (and, as root, hard) RLIMIT_NOFILE to `want`; never lowers
 * either. Returns the limit in force afterwards; `note` says why it is below `want`.
 */
export function raiseNofile(want: number): NofileLimit & { readonly note?: string } {
  const now = readNofile();
  if (now.soft >= want) return now;
  const root = process.geteuid?.() === 0;
  const hard = root ? Math.max(now.hard, Math.min(want, nrOpen())) : now.hard;
  const soft = Math.min(want, hard);
  if (soft <= now.soft) {
    return { ...now, note: `the hard limit is ${now.hard} and only root may raise it` };
  }
  const r = spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${soft}:${hard}`], {
    encoding: 'utf8',
    timeout: 10_000,
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
  });
  const after = readNofile();
  if (after.soft >= soft) return after;
  const why = r.error ? r.error.message : r.stderr.trim() || `prlimit exited with ${r.status ?? r.signal}`;
  return { ...after, note: `prlimit failed: ${why}` };
}
