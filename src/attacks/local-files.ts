/**
 * What a local attack is judged on: a victim file's owner, mode, size, content and xattrs,
 * which processes hold it open, which uid a process runs as, and which processes a world left.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { lgetxattr, llistxattr } from '../host/native.js';
import { processStartTime, processStatus } from '../host/proc.js';

/** What a victim file is, to the byte (a special file: its type and metadata): compared after the attack. */
export interface FileSnapshot {
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
  readonly size: number;
  readonly sha256: string;
  readonly xattrs: Readonly<Record<string, string>>;
  readonly dev: number;
  readonly ino: number;
}

export function snapshot(path: string): FileSnapshot {
  const st = statSync(path);
  const xattrs: Record<string, string> = {};
  for (const name of llistxattr(path)) xattrs[name] = lgetxattr(path, name)?.toString('base64') ?? '';
  return {
    uid: st.uid,
    gid: st.gid,
    mode: st.mode & 0o7777,
    size: st.size,
    // Only a regular file is read: a FIFO would block, a device would act.
    sha256: st.isFile()
      ? createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16)
      : `(mode ${st.mode.toString(8)})`,
    xattrs,
    dev: st.dev,
    ino: st.ino,
  };
}

/** How `path` differs from `before` (same inode expected), or undefined when it is untouched. */
export function changedFrom(before: FileSnapshot, path: string): string | undefined {
  let now: FileSnapshot;
  try {
    now = snapshot(path);
  } catch (err) {
    return `it is gone (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
  const diffs: string[] = [];
  if (now.dev !== before.dev || now.ino !== before.ino) diffs.push('another file is at its path');
  if (now.uid !== before.uid || now.gid !== before.gid) diffs.push(`owner ${before.uid}:${before.gid} → ${now.uid}:${now.gid}`);
  if (now.mode !== before.mode) diffs.push(`mode ${before.mode.toString(8)} → ${now.mode.toString(8)}`);
  if (now.size !== before.size) diffs.push(`size ${before.size} → ${now.size}`);
  else if (now.sha256 !== before.sha256) diffs.push('content changed');
  const names = new Set([...Object.keys(before.xattrs), ...Object.keys(now.xattrs)]);
  for (const n of names) if (before.xattrs[n] !== now.xattrs[n]) diffs.push(`xattr ${n} changed`);
  return diffs.length > 0 ? diffs.join(', ') : undefined;
}

/** The pids (from `pids`) that hold `path`'s inode open, by their /proc fd links. */
export function holders(pids: readonly number[], snap: FileSnapshot): number[] {
  const out: number[] = [];
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone
    }
    for (const fd of fds) {
      try {
        const st = statSync(`/proc/${pid}/fd/${fd}`);
        if (st.dev === snap.dev && st.ino === snap.ino) {
          out.push(pid);
          break;
        }
      } catch {
        // closed meanwhile, or not a file we can stat: not the victim
      }
    }
  }
  return out;
}

export function uidOf(pid: number): number | undefined {
  const uid = processStatus(pid)?.get('Uid')?.split(/\s+/)[0];
  return uid === undefined ? undefined : Number(uid);
}

/** Processes (pid + start time) whose argv mentions `text`; qemu: the executable is a QEMU. */
export function processesNaming(text: string): { pid: number; startTime: number; qemu: boolean }[] {
  const out: { pid: number; startTime: number; qemu: boolean }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone
    }
    if (!argv.some((a) => a.includes(text))) continue;
    const startTime = processStartTime(pid);
    if (startTime !== undefined) out.push({ pid, startTime, qemu: /qemu-system/.test(argv[0] ?? '') });
  }
  return out;
}
