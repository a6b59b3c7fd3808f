/**
 * `managedsave`: a save whose file is svirt's own (`<state dir>/managed-save/<uuid>.save`,
 * libvirt keeps `/var/lib/libvirt/qemu/save/NAME.save`). It is made, labelled for the guest
 * while QEMU writes it and given back exactly as `save` does (save.ts); the next `start`
 * restores it with fresh labels (restore's path: the header is sealed and checked, the
 * labels come from the stored definition) and removes it once the guest runs. A failed
 * restore keeps the file, as libvirtd does; `start --force-boot` discards it.
 */
import { constants, lstatSync, mkdirSync, openSync, closeSync, fstatSync } from 'node:fs';
import { join } from 'node:path';
import { SvirtError, errnoOf } from '../../errors.js';
import { unlinkBeneath } from '../../host/file-handle.js';
import { forgetExtras } from '../../store/domain-extras.js';
import type { RunningRecord } from '../../store/store.js';
import type { LifecycleEnv } from '../env.js';
import { requireRunning, type Guest } from '../guest.js';
import type { Progress } from '../incoming.js';

/** The directory, under the state dir (entrypoints refuse it as any guest's file). */
export const MANAGED_SAVE_DIR = 'managed-save';

export function managedSavePath(env: LifecycleEnv, uuid: string): string {
  return join(env.paths.stateDir, MANAGED_SAVE_DIR, `${uuid}.save`);
}

/**
 * Makes the directory (0711, as the state dir: a guest's uid reaches its own file while it is
 * labelled for it, and can list nothing) and checks it is svirt's: a directory, not a link,
 * owned by this user, writable by no one else.
 */
function ensureDir(env: LifecycleEnv): void {
  const dir = join(env.paths.stateDir, MANAGED_SAVE_DIR);
  try {
    mkdirSync(dir, { mode: 0o711 });
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST')
      throw new SvirtError('SVIRT_ERR_HOST', `cannot create "${dir}": ${errnoOf(err) ?? String(err)}`);
  }
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    const st = fstatSync(fd);
    if (st.uid !== (process.geteuid?.() ?? 0) || (st.mode & 0o022) !== 0) {
      throw new SvirtError(
        'SVIRT_ERR_HOST',
        `"${dir}" is not svirt's own directory (owner ${st.uid}, mode ${(st.mode & 0o777).toString(8)})`,
      );
    }
  } finally {
    closeSync(fd);
  }
}

/** Whether the guest has a managed save image (a regular file; anything else there is not one). */
export function hasManagedSave(env: LifecycleEnv, uuid: string): boolean {
  try {
    // no ENOENT thrown for the usual answer: dominfo asks on every call (issue 17)
    return lstatSync(managedSavePath(env, uuid), { throwIfNoEntry: false })?.isFile() ?? false;
  } catch {
    return false; // the dir is not one, or not ours to read: no managed save svirt can use
  }
}

/** `managedsave NAME`: the guest's state into svirt's file, and the guest stops. */
export async function managedSave(env: LifecycleEnv, guest: Guest, progress?: Progress): Promise<void> {
  const rec = requireRunning(guest);
  if (!rec.persistent) {
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `cannot do managed save for transient domain '${rec.name}'`);
  }
  ensureDir(env);
  // save.js (and stop's cleanup with it) only when a managed save runs: not on list's or start's path
  const { saveGuest } = await import('../save.js');
  await saveGuest(env, guest, managedSavePath(env, rec.uuid), progress);
}

/** `managedsave-remove NAME`: false when there was none. */
export function removeManagedSave(env: LifecycleEnv, guest: Guest): boolean {
  if (!hasManagedSave(env, guest.uuid)) return false;
  unlinkBeneath(managedSavePath(env, guest.uuid), 'remove the managed save of', (st) => st.isFile());
  return true;
}

/**
 * The start of a guest that has a managed save: restored from it (then the file goes), or,
 * with `forceBoot`, the file goes and the guest boots afresh (undefined: boot as usual).
 */
export async function startManaged(
  env: LifecycleEnv,
  uuid: string,
  opts: { paused?: boolean; forceBoot?: boolean },
  restore: (file: string, o: { paused?: boolean }) => Promise<RunningRecord>,
): Promise<RunningRecord | undefined> {
  if (!hasManagedSave(env, uuid)) return undefined;
  const file = managedSavePath(env, uuid);
  if (opts.forceBoot === true) {
    unlinkBeneath(file, 'remove the managed save of', (st) => st.isFile());
    return undefined;
  }
  const rec = await restore(file, opts.paused === true ? { paused: true } : {});
  unlinkBeneath(file, 'remove the managed save of', (st) => st.isFile());
  return rec;
}

/**
 * Checks an undefine against the managed save (libvirt refuses unless told to remove it);
 * returns what removes it, and the autostart mark, once the definition is gone.
 */
export function undefineManagedSave(env: LifecycleEnv, uuid: string, name: string, remove: boolean): () => void {
  if (!hasManagedSave(env, uuid)) return () => forgetExtras(env.store, uuid);
  if (!remove) {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `Refusing to undefine while domain managed save image exists (use --managed-save to remove it with '${name}')`,
    );
  }
  return () => {
    forgetExtras(env.store, uuid);
    unlinkBeneath(managedSavePath(env, uuid), 'remove the managed save of', (st) => st.isFile());
  };
}
