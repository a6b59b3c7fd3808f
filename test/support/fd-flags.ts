import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** The open flags (octal `flags:` of /proc/PID/fdinfo) of each fd process `pid` holds on `path`. */
export function fdFlags(pid: number, path: string): number[] {
  const out: number[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target = '';
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    if (target !== path) continue;
    const m = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
    if (m?.[1]) out.push(Number.parseInt(m[1], 8));
  }
  return out;
}

/** The access modes (O_ACCMODE: 0 read-only, 2 read-write) of those fds. */
export const accessModes = (pid: number, path: string): number[] => fdFlags(pid, path).map((f) => f & 3);
