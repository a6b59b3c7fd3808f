/**
 * Removing a guest's cgroup: at stop, at cleanup (the monitor's hook, serve, reconcile), in a
 * failed start's undo, and (empty directories only) once a guest no record names has exited.
 */
import { existsSync, readFileSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { SvirtError } from '../../errors.js';
import { cgroupJournalPath, readJournal, writeJournal } from './journal.js';
import { removeFile } from '../../host/files.js';

/**
 * Removes the guest's cgroup: any process still in it (a helper's child) is killed first,
 * then each directory goes; the journal goes last. Idempotent. Throws if a directory stays.
 */
export async function removeGuestCgroup(stateDir: string, uuid: string): Promise<void> {
  const j = readJournal(stateDir, uuid);
  if (!j) return;
  for (const d of j.dirs) await emptyAndRemove(d.dir);
  unlinkSync(cgroupJournalPath(stateDir, uuid));
}

/**
 * The cgroup of a guest that has exited and that no running record names (its store was lost
 * while it ran, or a failed start's undo could not remove it): each directory the journal
 * names goes if it is empty, by rmdir alone (nothing is killed: without a record, a process
 * still there is left to whoever knows it). The journal goes with the last directory, or keeps
 * naming those left. Returns the directories left.
 */
export function removeExitedCgroup(stateDir: string, uuid: string): string[] {
  const j = readJournal(stateDir, uuid);
  if (!j) return [];
  const left = j.dirs.filter((d) => {
    try {
      rmdirSync(d.dir);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code !== 'ENOENT'; // EBUSY: processes or child cgroups in it
    }
  });
  if (left.length === 0) removeFile(cgroupJournalPath(stateDir, uuid));
  else if (left.length < j.dirs.length) writeJournal(stateDir, { ...j, dirs: left });
  return left.map((d) => d.dir);
}

async function emptyAndRemove(dir: string): Promise<void> {
  const deadline = Date.now() + 5000;
  // Right after QEMU exits its cgroup is busy until the monitor has reaped it (~1 ms): poll
  // quickly at first (a fixed 10 ms cost every library destroy 10 ms), then back off.
  let pauseMs = 1;
  for (;;) {
    if (!existsSync(dir)) return;
    const pids = procs(dir);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL'); // only the guest's processes are in its cgroup
      } catch {
        // gone already
      }
    }
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || Date.now() > deadline)
        throw new SvirtError('SVIRT_ERR_CGROUP', `cannot remove the guest's cgroup "${dir}": ${code ?? String(err)}`, {
          cause: err,
        });
    }
    await new Promise((r) => setTimeout(r, pauseMs));
    pauseMs = Math.min(10, pauseMs * 2);
  }
}

function procs(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter((l) => /^[0-9]+$/.test(l))
      .map(Number);
  } catch {
    return [];
  }
}
