/**
 * Who the warm worker (warm-worker.ts) runs a command for, and what it must check first: the
 * verbs it takes, the request's shape and bounds, and that the caller is this process's twin
 * in everything that decides what a command may do, and for a start, in what QEMU inherits.
 */
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { processStatus } from '../host/proc.js';

/**
 * The verbs a worker runs (bin/svirt.js has the same list; a test holds them equal): the read
 * verbs, those that change a guest, save, and the three that start one (below).
 */
export const WARM_VERBS: ReadonlySet<string> = new Set([
  'list',
  'dominfo',
  'domstate',
  'dumpxml',
  'domuuid',
  'define',
  'undefine',
  'destroy',
  'shutdown',
  'suspend',
  'resume',
  'reset',
  'save',
  'start',
  'create',
  'restore',
]);

/**
 * Verbs whose QEMU is started by this process and inherits from it what a CLI's QEMU inherits
 * from the CLI: resource limits, CPU and memory-node affinity, nice value, OOM score. Its cgroup
 * goes under this process's own unless SVIRT_CGROUP_PARENT names one (cgroup/guest-cgroup.ts).
 * These run here only when all of that is the caller's too.
 */
export const STARTING_VERBS: ReadonlySet<string> = new Set(['start', 'create', 'restore']);

/** Bounds on what a client sends: one request line, with exactly four fds. */
export const REQUEST_MAX = 256 * 1024;
const ENV_MAX = 4096;
const ARGV_MAX = 256;
/** A client sends its request right after `ready`; one that does not within this is closed. */
export const REQUEST_WAIT_MS = 2000;

/** What must be equal between the caller and this process (see the file comment). */
const STATUS_FIELDS = [
  'Uid',
  'Gid',
  'Groups',
  'CapInh',
  'CapPrm',
  'CapEff',
  'CapBnd',
  'CapAmb',
  'NoNewPrivs',
  'Seccomp',
  'Seccomp_filters',
];
const NAMESPACES = ['mnt', 'net', 'pid', 'user', 'ipc', 'uts', 'cgroup', 'time'];
const LSM_ATTRS = ['attr/current', 'attr/apparmor/current'];
/** Variables that must be the caller's and serve's alike; SVIRT_SERVE_* are serve's own, no verb reads them. */
const PINNED_ENV = /^(?:SVIRT_(?!SERVE_)|NODE_)/;

export interface Request {
  readonly argv: string[];
  readonly env: Record<string, string>;
  readonly umask: number;
  /** The caller's build of svirt (bin/svirt.js's buildOf: the full bundle's inode and mtime). */
  readonly build: string;
}

/** /proc/PID/status of `pid` as fields (host/proc.ts); throws when it cannot be read. */
function statusOf(pid: number | 'self'): Map<string, string> {
  const fields = processStatus(pid === 'self' ? process.pid : pid);
  if (fields === undefined) throw Object.assign(new Error(`/proc/${pid}/status: gone`), { code: 'ESRCH' });
  return fields;
}

/** The facts of a process that decide what it may do, as one comparable list of [what, value]. */
export function processContext(pid: number | 'self'): [string, string][] {
  const at = `/proc/${pid}`;
  const out: [string, string][] = [];
  const status = statusOf(pid);
  for (const f of STATUS_FIELDS) out.push([f, status.get(f) ?? '-']);
  for (const ns of NAMESPACES) {
    let link = '-';
    try {
      link = readlinkSync(`${at}/ns/${ns}`);
    } catch {
      // a namespace this kernel does not have: absent for both
    }
    out.push([`${ns} namespace`, link]);
  }
  const root = statSync(`${at}/root`);
  out.push(['root directory', `${root.dev}:${root.ino}`]);
  for (const a of LSM_ATTRS) {
    let label = '-';
    try {
      label = readFileSync(`${at}/${a}`, 'latin1').replace(/\0/g, '').trim();
    } catch {
      // no such LSM here: absent for both
    }
    out.push([a, label]);
  }
  return out;
}

/** What a QEMU started by process `pid` would inherit from it (see STARTING_VERBS), as [what, value]. */
export function startContext(pid: number | 'self', cgroupParent: string | undefined): [string, string][] {
  const at = `/proc/${pid}`;
  const status = statusOf(pid);
  const field = (f: string): string => status.get(f) ?? '-';
  // stat: after the command's ")" come state (field 3) … nice is field 19.
  const stat = readFileSync(`${at}/stat`, 'latin1');
  const nice = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16] ?? '-';
  return [
    ['resource limits', readFileSync(`${at}/limits`, 'latin1')],
    ['CPU affinity', field('Cpus_allowed_list')],
    ['memory nodes', field('Mems_allowed_list')],
    ['nice value', nice],
    ['OOM score adjustment', readFileSync(`${at}/oom_score_adj`, 'latin1').trim()],
    ['cgroup', cgroupParent ? `under ${cgroupParent}` : readFileSync(`${at}/cgroup`, 'latin1')],
  ];
}

/** The first [what] that differs between two lists made by the same function, or undefined. */
function firstDifference(theirs: readonly [string, string][], own: readonly [string, string][]): string | undefined {
  for (let i = 0; i < own.length; i++) {
    if (theirs[i]?.[1] !== own[i]?.[1]) return `its ${own[i]?.[0]} differs`;
  }
  return undefined;
}

/** Why the process `pid` is not this one's twin, or undefined when it is. */
export function contextDiffers(pid: number, own: readonly [string, string][]): string | undefined {
  let theirs: [string, string][];
  try {
    theirs = processContext(pid);
  } catch (err) {
    return `cannot read /proc/${pid}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
  return firstDifference(theirs, own);
}

/** Why a QEMU the process `pid` starts would not be the one this process starts, or undefined. */
export function startDiffers(pid: number, cgroupParent: string | undefined): string | undefined {
  try {
    return firstDifference(startContext(pid, cgroupParent), startContext('self', cgroupParent));
  } catch (err) {
    return `cannot read /proc/${pid}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
}

/** The request line, checked for shape and bounds; a string saying what is wrong otherwise. */
export function parseRequest(data: Buffer): Request | string {
  if (data.length === 0 || data.length > REQUEST_MAX || data[data.length - 1] !== 0x0a) return 'not one request line';
  let v: unknown;
  try {
    v = JSON.parse(data.subarray(0, -1).toString('utf8'));
  } catch {
    return 'not JSON';
  }
  const r = v as Partial<Request> | null;
  if (typeof r !== 'object' || r === null) return 'not an object';
  if (!Array.isArray(r.argv) || r.argv.length > ARGV_MAX || !r.argv.every((a) => typeof a === 'string')) return 'bad argv';
  if (typeof r.env !== 'object' || r.env === null || Array.isArray(r.env)) return 'bad env';
  const entries = Object.entries(r.env);
  // What execve could pass: a name without '=' or NUL, a value without NUL.
  const plain = ([k, x]: [string, unknown]): boolean => /^[^=\0]+$/.test(k) && typeof x === 'string' && !x.includes('\0');
  if (entries.length > ENV_MAX || !entries.every(plain)) return 'bad env';
  if (typeof r.umask !== 'number' || !Number.isInteger(r.umask) || r.umask < 0 || r.umask > 0o777) return 'bad umask';
  if (typeof r.build !== 'string' || r.build.length > 64) return 'bad build';
  return { argv: r.argv, env: Object.fromEntries(entries) as Record<string, string>, umask: r.umask, build: r.build };
}

/** The `SVIRT_*` or `NODE_*` variable that differs between `a` and `b`, or undefined. */
export function pinnedEnvDiffers(
  a: Readonly<Record<string, string | undefined>>,
  b: Readonly<Record<string, string | undefined>>,
): string | undefined {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)].filter((k) => PINNED_ENV.test(k)));
  for (const k of keys) if (a[k] !== b[k]) return k;
  return undefined;
}
