/**
 * Who asks: the identity of a caller of a management operation. The CLI's is the process's
 * own (real ids, supplementary groups, SELinux context); a `svirt serve` client's is what the
 * kernel says of the socket's peer (SO_PEERCRED, SO_PEERSEC). A client over `qemu+ssh://` is a
 * socket peer like any other: sshd runs its helper as the authenticated user, so SO_PEERCRED's
 * uid is the SSH user. A `qemu+tls://` client has no local account: it is the subject DN of the
 * certificate the server verified (docs/remote.md).
 */
import { readFileSync } from 'node:fs';
import { processStatus } from '../host/proc.js';
import { kernelRunsSelinux } from '../security/selinux/selinux-kernel.js';

/** Where the call came from. */
export type CallerVia = 'cli' | 'socket-rw' | 'socket-ro' | 'tls';

export interface Identity {
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups where known (the CLI; a socket peer's from /proc/PID/status). */
  readonly groups: readonly number[];
  /** The caller's pid: the CLI's own, or the peer's at connect. */
  readonly pid: number;
  /** SELinux context (`/proc/self/attr/current` or SO_PEERSEC); undefined without SELinux. */
  readonly context?: string | undefined;
  readonly via: CallerVia;
  /** Remote hosts (issue 16): the authenticated SSH user or TLS certificate DN. */
  readonly sshUser?: string;
  /** A `tls` caller's verified certificate subject, in libvirt's form (`C=GB,O=Example,CN=admin`). */
  readonly tlsDn?: string;
  /** A `tls` caller's address and port, for logs. */
  readonly remote?: string;
}

/** The uid of a caller without a local account (a TLS client, a peer whose credentials cannot be read). */
export const NOBODY_UID = 0xfffffffe;

/** The identity of a TLS client: no uid, no groups; its verified certificate DN (undefined: none verified). */
export function tlsIdentity(dn: string | undefined, remote: string): Identity {
  return { uid: NOBODY_UID, gid: NOBODY_UID, groups: [], pid: 0, via: 'tls', remote, ...(dn === undefined ? {} : { tlsDn: dn }) };
}

/** How messages name a caller: `uid 1000`, or `TLS client "CN=admin" (10.0.0.2:40112)`. */
export function callerName(id: Identity): string {
  if (id.via === 'tls')
    return `TLS client ${id.tlsDn === undefined ? '(no verified certificate)' : `"${id.tlsDn}"`}${id.remote ? ` (${id.remote})` : ''}`;
  return `uid ${id.uid}`;
}

/** The type field of a SELinux context (`user:role:type:level`), undefined if there is none. */
export function selinuxType(context: string | undefined): string | undefined {
  if (context === undefined) return undefined;
  const parts = context.split(':');
  return parts.length >= 3 ? parts[2] : undefined;
}

/** The context of the current process, undefined where the kernel has no SELinux (or an LSM that is not it). */
function ownContext(): string | undefined {
  // Only SELinux has contexts: elsewhere the read fails (EINVAL) or holds an AppArmor label, and
  // a verb's first thrown error costs ~1 ms in a fresh Node (issue 17).
  if (!kernelRunsSelinux()) return undefined;
  try {
    // Under AppArmor this file holds a profile name ("unconfined"); only a context with ':' counts.
    const text = readFileSync('/proc/self/attr/current', 'latin1').replace(/\0.*$/s, '').trim();
    return text.includes(':') && !text.includes(' ') ? text : undefined;
  } catch {
    return undefined;
  }
}

/** The CLI's caller: real uid and gid (not effective: a setuid wrapper does not make a caller root). */
export function cliIdentity(): Identity {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const groups = process.getgroups?.() ?? [];
  return { uid, gid, groups: [...new Set(groups)], pid: callerPid ?? process.pid, context: ownContext(), via: 'cli' };
}

/** The CLI process the warm worker runs the current command for (src/cli/warm-worker.ts). */
let callerPid: number | undefined;

/**
 * The warm worker runs a command for the CLI process `pid`, whose uids, groups and label are
 * this process's own (it checked): the audit trail names that process. undefined when done.
 */
export function runningFor(pid: number | undefined): void {
  callerPid = pid;
}

/** Supplementary groups of a live pid (`Groups:` of /proc/PID/status); empty when it cannot be read. */
export function groupsOfPid(pid: number): number[] {
  const groups = processStatus(pid)?.get('Groups') ?? '';
  return groups
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number);
}

/** One line for logs and the audit trail: `uid 1000 gid 1000 pid 812 (staff_u:staff_r:staff_t:s0)`. */
export function describeIdentity(id: Identity): string {
  if (id.via === 'tls') return callerName(id);
  return `uid ${id.uid} gid ${id.gid} pid ${id.pid}${id.context ? ` (${id.context})` : ''}`;
}
