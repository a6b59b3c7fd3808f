/**
 * After a CLI verb changed a guest, one line to a running `svirt serve` of the same state dir
 * on the monitors' notify socket, so serve sends its clients the lifecycle events at once
 * (src/remote/events.ts): `changed VERB`, and then the state of each guest the verb's store
 * writes touched, as serve's look would record it (JSON, src/store/touched.ts). With them, serve
 * tells the change even when it reads the line after later verbs changed the guest again.
 * Best effort and bounded: no serve, a full backlog or any error costs nothing but this line;
 * serve's periodic look still finds the change (not its steps).
 */
import { closeSync, constants, lstatSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { StatePaths } from '../host/paths.js';
import { connectUnixAt } from '../host/native.js';
import { NOTIFY_SOCKET_NAME, notifySocketPath } from '../lifecycle/exit-notify.js';
import { CHANGED_LINE_MAX } from '../remote/changed-line.js';
import { touchedReports, type RowsReader } from '../store/touched.js';

/**
 * The line: `changed VERB`, then ` ` and the touched guests' reports when there are any (and
 * they fit in serve's bound; else the verb alone, and serve looks at the store).
 */
export function changedLine(verb: string, touched: ReadonlyMap<string, RowsReader> | undefined): string {
  const plain = `changed ${verb}\n`;
  const reports = touched === undefined ? undefined : touchedReports(touched);
  if (reports === undefined || reports.length === 0) return plain;
  const line = `changed ${verb} ${JSON.stringify(reports)}\n`;
  return Buffer.byteLength(line) <= CHANGED_LINE_MAX ? line : plain;
}

export function tellServe(paths: StatePaths, verb: string, touched?: ReadonlyMap<string, RowsReader>): void {
  // No serve, the usual case: no socket, and no ENOENT thrown by a connect (issue 17).
  if (lstatSync(notifySocketPath(paths), { throwIfNoEntry: false }) === undefined) return;
  const line = changedLine(verb, touched); // read before the connect: serve waits 1 s at most for it
  let dir: number;
  try {
    // The monitor dir is root's 0700 dir: no link on the way is followed at its last step.
    dir = openSync(dirname(notifySocketPath(paths)), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch {
    return; // no runtime dir: no serve
  }
  try {
    const fd = connectUnixAt(dir, NOTIFY_SOCKET_NAME, true);
    try {
      writeSync(fd, line);
    } finally {
      closeSync(fd);
    }
  } catch {
    // No serve listens (ENOENT, ECONNREFUSED), or it is busy (EAGAIN): nothing to tell.
  } finally {
    closeSync(dir);
  }
}
