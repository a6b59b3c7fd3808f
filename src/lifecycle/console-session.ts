/**
 * `svirt console`: the pty of a guest's serial port, console or channel, opened for one
 * session at a time. The session is held by a lock file in the root-only monitor dir
 * (`<uuid>.<alias>.console`, holding the holder's pid and start time): a second session is
 * refused unless forced, which ends the holder first. The pty is the one the live XML shows,
 * checked to be the pty whose master the guest's monitor relays (pty-relay.ts) before svirt
 * opens it. The locks of a guest go with it (`removeConsoleLocks`, at cleanup).
 */
import { closeSync, constants, openSync, readFileSync, readdirSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SvirtError, errnoOf } from '../errors.js';
import { openHandle } from '../host/file-handle.js';
import { openPath } from '../host/native.js';
import { isAlive, signal, waitGone, type ProcessIdentity } from '../host/proc.js';
import { chardevSlots, findSlot } from '../qemu/chardev-argv.js';
import type { LifecycleEnv } from './env.js';
import { requireRunning, type Guest } from './guest.js';
import { checkRelayedPty, isPtySlave, livePtyPaths } from './pty-relay.js';

export interface ConsoleSession {
  /** The pty, open O_RDWR|O_NOCTTY. */
  readonly fd: number;
  readonly alias: string;
  readonly path: string;
  /** Closes the pty and drops the lock (idempotent). */
  close(): void;
}

function lockPath(env: LifecycleEnv, uuid: string, alias: string): string {
  return join(env.paths.runtimeRoot, 'monitor', `${uuid}.${alias}.console`);
}

/** A lock's holder; `server`: a `svirt serve` holds it for a client, and is never signalled. */
type Holder = ProcessIdentity & { readonly server: boolean };

/**
 * The sessions this process holds, by lock path: a forced takeover of one of them (another
 * client of the same serve) ends it here instead of signalling this process.
 */
const held = new Map<string, () => void>();

function readHolder(path: string): Holder | undefined {
  try {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      const [pid, startTime, tag] = readFileSync(fd, 'utf8').slice(0, 64).trim().split(' ');
      const id = { pid: Number(pid), startTime: Number(startTime) };
      return id.pid && id.startTime ? { ...id, server: tag === 'serve' } : undefined;
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined; // gone, or not a file svirt wrote: treated as no holder
  }
}

/** Takes the session lock; ends a live holder first when forced. */
async function takeLock(
  env: LifecycleEnv,
  path: string,
  name: string,
  alias: string,
  force: boolean,
  server: boolean,
): Promise<void> {
  for (let tries = 0; tries < 3; tries++) {
    try {
      const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      writeSync(fd, `${env.me.pid} ${env.me.startTime}${server ? ' serve' : ''}\n`);
      closeSync(fd);
      return;
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw err;
    }
    const holder = readHolder(path);
    const mine = holder?.pid === env.me.pid ? held.get(path) : undefined;
    if (holder && isAlive(holder)) {
      if (!force) {
        throw new SvirtError(
          'SVIRT_ERR_OPERATION_INVALID',
          `the console ${alias} of '${name}' is in use by another session (${holder.server ? 'a client of svirt serve' : 'svirt'} pid ${holder.pid}); --force takes it over`,
        );
      }
      if (mine) {
        mine(); // another client of this serve: its session ends here, and its lock with it
        continue;
      }
      if (holder.server) {
        throw new SvirtError(
          'SVIRT_ERR_OPERATION_INVALID',
          `the console ${alias} of '${name}' is held by a client of svirt serve (pid ${holder.pid}); take it over through that server`,
        );
      }
      signal(holder.pid, 'SIGTERM');
      if (!(await waitGone(holder, 5000, 20))) {
        throw new SvirtError('SVIRT_ERR_TIMEOUT', `the console session of pid ${holder.pid} did not end`);
      }
    }
    try {
      unlinkSync(path); // a stale lock (its holder is gone)
    } catch {
      // another svirt removed it first: the next O_EXCL decides
    }
  }
  throw new SvirtError(
    'SVIRT_ERR_OPERATION_INVALID',
    `cannot take the console ${alias} of '${name}': another session keeps taking it`,
  );
}

/** Opens the console session of `devname` (default: the first serial port or console). */
export async function openConsole(
  env: LifecycleEnv,
  guest: Guest,
  devname: string | undefined,
  force: boolean,
  server?: { readonly onTakenOver: () => void },
): Promise<ConsoleSession> {
  const rec = requireRunning(guest);
  const def = guest.def;
  const slot = findSlot(def, devname);
  if (!slot) {
    const known = chardevSlots(def).map((s) => s.alias);
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      devname === undefined
        ? `domain '${def.name}' has no console`
        : `domain '${def.name}' has no character device '${devname}' (it has: ${known.join(', ') || 'none'})`,
    );
  }
  if (slot.chardev.type !== 'pty') {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `the ${slot.alias} of '${def.name}' is of type ${slot.chardev.type}; svirt console attaches to ptys`,
    );
  }
  const lock = lockPath(env, rec.uuid, slot.alias);
  await takeLock(env, lock, def.name, slot.alias, force, server !== undefined);
  try {
    const path = livePtyPaths(def, rec.liveXml).get(slot.index);
    if (path === undefined) {
      throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `the ${slot.alias} of '${def.name}' has no pty in its live XML`);
    }
    checkRelayedPty(path, [rec.monitorPid, rec.pid], def.name);
    const h = openHandle(path, 'open the console');
    try {
      const st = h.current();
      if (!st.isCharacterDevice() || !isPtySlave(st.rdev)) {
        throw new SvirtError('SVIRT_ERR_PATH_INVALID', `"${path}" is not a pty`);
      }
      // a pty slave, checked above: opening it neither blocks (O_NONBLOCK) nor makes it our terminal
      const fd = openSync(h.procPath, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
      let open = true;
      const close = (): void => {
        if (!open) return;
        open = false;
        held.delete(lock);
        closeSync(fd);
        const holder = readHolder(lock);
        if (holder?.pid === env.me.pid) unlinkSync(lock);
      };
      if (server) {
        held.set(lock, () => {
          close();
          server.onTakenOver();
        });
      }
      return { fd, alias: slot.alias, path, close };
    } finally {
      h.close();
    }
  } catch (err) {
    unlinkSync(lock);
    throw err;
  }
}

/**
 * Removes the console locks of guest `uuid` whose holder is gone (a live session removes its
 * own when the pty closes under it). Only names inside the root-only monitor dir, each a
 * plain file: unlink never follows a symlink in the last component.
 */
export function removeConsoleLocks(env: LifecycleEnv, uuid: string): void {
  let dir: number;
  try {
    dir = openPath(join(env.paths.runtimeRoot, 'monitor')); // no symlink on the way
  } catch {
    return; // no monitor dir: no locks
  }
  try {
    const at = `/proc/self/fd/${dir}`;
    for (const name of readdirSync(at)) {
      if (!name.startsWith(`${uuid}.`) || !name.endsWith('.console')) continue;
      const holder = readHolder(`${at}/${name}`);
      if (holder && isAlive(holder)) continue;
      try {
        unlinkSync(`${at}/${name}`);
      } catch {
        // removed by its holder or another svirt meanwhile
      }
    }
  } finally {
    closeSync(dir);
  }
}
