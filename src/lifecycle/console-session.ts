/**
 * `svirt console`: the pty of a guest's serial port, console or channel, opened for one
 * session at a time. The session is held by a lock file in the root-only monitor dir
 * (`<uuid>.<alias>.console`, holding the holder's pid and start time): a second session is
 * refused unless forced, which ends the holder first. The pty is found with query-chardev and
 * checked (a devpts terminal owned by QEMU's uid) before svirt opens it.
 */
import { closeSync, constants, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SvirtError, errnoOf } from '../errors.js';
import { openHandle } from '../host/file-handle.js';
import { isAlive, processStatus, signal, waitGone, type ProcessIdentity } from '../host/proc.js';
import { chardevSlots, findSlot } from '../qemu/chardev-argv.js';
import { isPtySlave } from './console-devices.js';
import type { LifecycleEnv } from './env.js';
import { requireRunning, type Guest } from './guest.js';

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

function readHolder(path: string): ProcessIdentity | undefined {
  try {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      const [pid, startTime] = readFileSync(fd, 'utf8').slice(0, 64).trim().split(' ').map(Number);
      return pid && startTime ? { pid, startTime } : undefined;
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined; // gone, or not a file svirt wrote: treated as no holder
  }
}

/** Takes the session lock; ends a live holder first when forced. */
async function takeLock(env: LifecycleEnv, path: string, name: string, alias: string, force: boolean): Promise<void> {
  for (let tries = 0; tries < 3; tries++) {
    try {
      const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      writeSync(fd, `${env.me.pid} ${env.me.startTime}\n`);
      closeSync(fd);
      return;
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw err;
    }
    const holder = readHolder(path);
    if (holder && isAlive(holder)) {
      if (!force) {
        throw new SvirtError(
          'SVIRT_ERR_OPERATION_INVALID',
          `the console ${alias} of '${name}' is in use by another session (svirt pid ${holder.pid}); --force takes it over`,
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

/** The pty of a chardev, as QEMU reports it now, checked to be QEMU's terminal. */
async function ptyOf(env: LifecycleEnv, guest: Guest, id: string): Promise<string> {
  const rec = requireRunning(guest);
  const info = (await env.withQmp(rec, (q) => q.execute('query-chardev'))) as { label?: string; filename?: string }[];
  const f = info.find((c) => c.label === id)?.filename;
  if (f === undefined || !f.startsWith('pty:')) {
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `chardev ${id} of '${guest.def.name}' has no pty (${f ?? 'absent'})`);
  }
  return f.slice('pty:'.length);
}

/** Opens the console session of `devname` (default: the first serial port or console). */
export async function openConsole(
  env: LifecycleEnv,
  guest: Guest,
  devname: string | undefined,
  force: boolean,
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
  await takeLock(env, lock, def.name, slot.alias, force);
  try {
    const path = await ptyOf(env, guest, slot.id);
    const h = openHandle(path, 'open the console');
    try {
      const st = h.current();
      const uid = Number(rec.pid ? processStatus(rec.pid)?.get('Uid')?.split(/\s+/)[1] : NaN);
      if (!/^\/dev\/pts\/\d+$/.test(path) || !st.isCharacterDevice() || !isPtySlave(st.rdev) || st.uid !== uid) {
        throw new SvirtError('SVIRT_ERR_PATH_INVALID', `"${path}" is not QEMU's pty (owner ${st.uid}, QEMU uid ${uid})`);
      }
      // a pty slave, checked above: opening it neither blocks (O_NONBLOCK) nor makes it our terminal
      const fd = openSync(h.procPath, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
      let open = true;
      return {
        fd,
        alias: slot.alias,
        path,
        close: () => {
          if (!open) return;
          open = false;
          closeSync(fd);
          const holder = readHolder(lock);
          if (holder?.pid === env.me.pid) unlinkSync(lock);
        },
      };
    } finally {
      h.close();
    }
  } catch (err) {
    unlinkSync(lock);
    throw err;
  }
}
