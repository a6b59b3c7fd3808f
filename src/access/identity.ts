/**
 * Who asks: the identity of a caller of a management operation. The CLI's is the process's
 * own (real ids, supplementary groups, SELinux context); a `svirt serve` client's is what the
 * kernel says of the socket's peer (SO_PEERCRED, SO_PEERSEC). Room is left for the SSH user
 * and TLS certificate of remote hosts (issue 16).
 */
import { readFileSync } from 'node:fs';

/** Where the call came from. */
export type CallerVia = 'cli' | 'socket-rw' | 'socket-ro';

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
  readonly tlsDn?: string;
}

/** The type field of a SELinux context (`user:role:type:level`), undefined if there is none. */
export function selinuxType(context: string | undefined): string | undefined {
  if (context === undefined) return undefined;
  const parts = context.split(':');
  return parts.length >= 3 ? parts[2] : undefined;
}

/** The context of the current process, undefined where the kernel has no SELinux (or an LSM that is not it). */
function ownContext(): string | undefined {
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
  return { uid, gid, groups: [...new Set(groups)], pid: process.pid, context: ownContext(), via: 'cli' };
}

/** Supplementary groups of a live pid (`Groups:` of /proc/PID/status); empty when it cannot be read. */
export function groupsOfPid(pid: number): number[] {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'latin1');
    const line = /^Groups:\s*(.*)$/m.exec(status);
    if (!line?.[1]) return [];
    return line[1]
      .trim()
      .split(/\s+/)
      .filter((s) => /^\d+$/.test(s))
      .map(Number);
  } catch {
    return [];
  }
}

/** One line for logs and the audit trail: `uid 1000 gid 1000 pid 812 (staff_u:staff_r:staff_t:s0)`. */
export function describeIdentity(id: Identity): string {
  return `uid ${id.uid} gid ${id.gid} pid ${id.pid}${id.context ? ` (${id.context})` : ''}`;
}
