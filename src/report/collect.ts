/**
 * What `svirt report` shows (issue 15, "Debuggable"): every guest with each driver's label and
 * the owner, mode and SELinux label its files have now; the last matrices `svirt demo` ran;
 * the access rules in force; recent audit events. Read-only: nothing here changes a file.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from 'node:fs';
import { hostname, release } from 'node:os';
import { join } from 'node:path';
import { errnoOf } from '../errors.js';
import { lgetxattr } from '../host/native.js';
import type { Hypervisor } from '../lifecycle/hypervisor.js';
import type { GuestSecurity } from '../security/describe-guest.js';

export interface ReportFile {
  readonly path: string;
  readonly declared?: string;
  readonly role: string;
  /** uid:gid and mode now, or why they could not be read. */
  readonly owner: string;
  readonly mode: string;
  readonly selinux?: string;
  /** Still the file svirt labelled (device + inode), when the record says which. */
  readonly same?: boolean;
}

export interface ReportGuest {
  readonly name: string;
  readonly uuid: string;
  readonly state: string;
  readonly pid?: number;
  readonly stack: readonly string[];
  readonly security: GuestSecurity;
  readonly files: readonly ReportFile[];
}

/** A matrix `svirt demo` saved (its --json document), with when. */
export interface SavedMatrix {
  readonly kind: string;
  readonly savedAt: string;
  readonly data: unknown;
}

export interface ReportData {
  readonly generatedAt: string;
  readonly host: { readonly name: string; readonly kernel: string; readonly lsms: string; readonly stateDir: string };
  readonly stack: readonly string[];
  readonly guests: readonly ReportGuest[];
  readonly matrices: readonly SavedMatrix[];
  /** The rules file's text, or undefined when there is none (the defaults apply). */
  readonly rules?: string;
  readonly audit: readonly Record<string, unknown>[];
  /** The kernel's SELinux/AppArmor denials that carry a guest's label (newest first), and what was read. */
  readonly kernel?: {
    readonly denials: readonly Record<string, unknown>[];
    readonly read: readonly string[];
    readonly unread: readonly string[];
  };
}

/** The demo kinds whose last result is kept in `<state>/demo/KIND.json`. */
export const MATRIX_KINDS = ['attack', 'local', 'access'] as const;
const MAX_SAVED = 4 << 20;

/** Reads a small regular file without following a link or blocking on a FIFO; undefined when absent. */
export function readSmall(path: string, max = MAX_SAVED): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`"${path}" is not a regular file`);
    if (st.size > max) throw new Error(`"${path}" is larger than ${max} bytes`);
    const buf = Buffer.alloc(st.size);
    let got = 0;
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

function fileNow(r: { path: string; declared?: string; role: string; ident?: { dev: number; ino: number } }): ReportFile {
  const base = { path: r.path, role: r.role, ...(r.declared ? { declared: r.declared } : {}) };
  try {
    const st = lstatSync(r.path);
    let selinux: string | undefined;
    try {
      selinux = lgetxattr(r.path, 'security.selinux')?.toString('utf8').replace(/\0+$/u, '');
    } catch {
      selinux = undefined; // a filesystem without xattrs
    }
    return {
      ...base,
      owner: `${st.uid}:${st.gid}`,
      mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
      ...(selinux ? { selinux } : {}),
      ...(r.ident ? { same: r.ident.dev === st.dev && r.ident.ino === st.ino } : {}),
    };
  } catch (err) {
    return { ...base, owner: `(${errnoOf(err) ?? String(err)})`, mode: '' };
  }
}

/** Every guest, each driver's label, and its files as they are now. */
export async function collectGuests(hv: Hypervisor): Promise<ReportGuest[]> {
  const out: ReportGuest[] = [];
  for (const g of hv.list()) {
    const rec = g.record;
    out.push({
      name: g.name,
      uuid: g.uuid,
      state: rec ? (rec.paused ? 'paused' : rec.state) : 'shut off',
      ...(rec?.pid ? { pid: rec.pid } : {}),
      stack: rec ? rec.stack : hv.manager.names,
      security: await hv.describe(g),
      files: (rec?.resources ?? []).map(fileNow),
    });
  }
  return out;
}

/** The matrices `svirt demo` left in the state dir, newest kinds first. */
export function savedMatrices(stateDir: string): SavedMatrix[] {
  const out: SavedMatrix[] = [];
  for (const kind of MATRIX_KINDS) {
    const text = readSmall(join(stateDir, 'demo', `${kind}.json`));
    if (text === undefined) continue;
    const doc = JSON.parse(text) as { savedAt?: unknown; result?: unknown };
    out.push({ kind, savedAt: typeof doc.savedAt === 'string' ? doc.savedAt : '?', data: doc.result });
  }
  return out;
}

export function hostFacts(stateDir: string): ReportData['host'] {
  let lsms = '';
  try {
    lsms = readSmall('/sys/kernel/security/lsm', 4096)?.trim() ?? '';
  } catch {
    lsms = '(securityfs not mounted)';
  }
  return { name: hostname(), kernel: release(), lsms: lsms || '(securityfs not mounted)', stateDir };
}
