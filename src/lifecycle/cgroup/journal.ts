/**
 * The state dir's record of each guest's cgroup (`cgroups/UUID.json`), written before the
 * cgroup is made and removed after it is gone: what the cleanup removes, whichever process
 * runs it (a svirt in another cgroup, the monitor's hook), and what svirt-exec joins.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SvirtError } from '../../errors.js';
import type { ControlWrite } from './settings.js';

/** One directory of the guest's cgroup: in a v1 hierarchy (its controllers) or the v2 one. */
export interface CgroupDir {
  readonly version: 1 | 2;
  readonly controllers: readonly string[];
  readonly dir: string;
}

/** What the state dir remembers of a guest's cgroup (`cgroups/UUID.json`). */
export interface CgroupJournal {
  readonly uuid: string;
  readonly layout: 'v1' | 'v2' | 'hybrid' | 'none';
  readonly dirs: readonly CgroupDir[];
  /** How the device list is enforced: the v1 controller, a v2 BPF program, or not at all (the `none` stack). */
  readonly devices: readonly ('v1' | 'v2')[];
  readonly deviceRules: readonly string[];
  /** Rules added by hot-plug, by the plugged file's path (removed again at its unplug). */
  readonly plugged?: Readonly<Record<string, string>>;
  readonly writes: readonly ControlWrite[];
}

export function cgroupJournalPath(stateDir: string, uuid: string): string {
  return join(stateDir, 'cgroups', `${uuid}.json`);
}

/** The directories svirt-exec writes its pid into (each dir's cgroup.procs), from the journal. */
export function cgroupJoinDirs(stateDir: string, uuid: string): string[] {
  const j = readJournal(stateDir, uuid);
  return j ? j.dirs.map((d) => d.dir) : [];
}

export function readJournal(stateDir: string, uuid: string): CgroupJournal | undefined {
  const path = cgroupJournalPath(stateDir, uuid);
  let text: string;
  try {
    // no cgroup for this guest, the usual case at a start: no ENOENT thrown for it (issue 17)
    if (!existsSync(path)) return undefined;
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined; // gone meanwhile: no cgroup for this guest
  }
  const j = JSON.parse(text) as CgroupJournal;
  for (const d of j.dirs)
    if (!d.dir.startsWith('/sys/fs/cgroup/') || d.dir.includes('/../') || !d.dir.endsWith(`/svirt-${uuid}`))
      throw new SvirtError('SVIRT_ERR_CGROUP', `the cgroup journal of ${uuid} names "${d.dir}", not a guest cgroup`);
  return j;
}

/** Replaces the journal in one rename (a crash leaves the old one or the new one). */
export function writeJournal(stateDir: string, j: CgroupJournal): void {
  const path = cgroupJournalPath(stateDir, j.uuid);
  writeFileSync(`${path}.tmp`, JSON.stringify(j), { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}
