/**
 * After a CLI verb changed a guest, one line to a running `svirt serve` of the same state dir
 * (`changed VERB` on the monitors' notify socket), so serve sends its clients the lifecycle
 * events at once (src/remote/events.ts). Best effort and bounded: no serve, a full backlog or
 * any error costs nothing but this line; serve's periodic look still finds the change.
 */
import { closeSync, constants, lstatSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { StatePaths } from '../host/paths.js';
import { connectUnixAt } from '../host/native.js';
import { NOTIFY_SOCKET_NAME, notifySocketPath } from '../lifecycle/exit-notify.js';

export function tellServe(paths: StatePaths, verb: string): void {
  // No serve, the usual case: no socket, and no ENOENT thrown by a connect (issue 17).
  if (lstatSync(notifySocketPath(paths), { throwIfNoEntry: false }) === undefined) return;
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
      writeSync(fd, `changed ${verb}\n`);
    } finally {
      closeSync(fd);
    }
  } catch {
    // No serve listens (ENOENT, ECONNREFUSED), or it is busy (EAGAIN): nothing to tell.
  } finally {
    closeSync(dir);
  }
}
