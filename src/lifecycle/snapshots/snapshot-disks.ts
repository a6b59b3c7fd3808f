/**
 * What a snapshot does to disk images, each step on a file svirt opened itself:
 * - internal, shut off: `qemu-img snapshot -c|-a|-d TAG` on `/proc/self/fd/N` of the image, given as
 *   `json:` with its declared format (qcow2) and `"backing": null`: never probed, no backing
 *   file opened;
 * - internal, running: QEMU's `snapshot-save` / `snapshot-load` / `snapshot-delete` jobs on the
 *   disks' format nodes (the RAM goes into the first disk);
 * - external, shut off: a new qcow2 overlay created O_CREAT|O_EXCL|O_NOFOLLOW inside its
 *   opened directory, written by `qemu-img create -u` on its fd (the backing file is named in
 *   the header for other tools; svirt itself always gives QEMU the chain from the definition).
 * Every path is checked against the entrypoint rules first (docs/entrypoints.md).
 */
import { closeSync, constants, lstatSync, openSync, unlinkSync } from 'node:fs';
import { basename, dirname, isAbsolute, normalize } from 'node:path';
import type { Entrypoints } from '../../access/entrypoints.js';
import type { DiskDef } from '../../domain/domain-def.js';
import { SvirtError, errnoOf } from '../../errors.js';
import { openHandle, type FileHandle } from '../../host/file-handle.js';
import type { QmpClient } from '../../qemu/qmp-client.js';
import { imageArg, qemuImg } from '../../storage/qemu-img.js';
import { capacityOf } from '../../storage/volume-files.js';
import type { GuestResource } from '../../security/driver.js';

/** A job of a large guest on a loaded host: minutes, never unbounded. */
const JOB_TIMEOUT_MS = 10 * 60_000;
const POLL_MS = 200;

function resource(path: string, role: GuestResource['role'] = 'disk'): GuestResource {
  return { path, role, seclabels: [] };
}

/** Opens a disk's image (no link on the way) after the entrypoint rules; the caller closes it. */
export function openImage(disk: DiskDef, entry: Entrypoints): FileHandle {
  const path = disk.path as string;
  const r = resource(path);
  entry.checkPath(r);
  const h = openHandle(path, `open disk '${disk.target.dev}' for a snapshot:`);
  try {
    if (h.kind !== 'file')
      throw new SvirtError('SVIRT_ERR_PATH_INVALID', `disk '${disk.target.dev}' ("${path}") is not a regular file`);
    entry.checkOpened(r, h);
    return h;
  } catch (err) {
    h.close();
    throw err;
  }
}

/** `qemu-img snapshot -c|-a|-d TAG` on one qcow2 image, opened read-write through its handle. */
export async function qemuImgSnapshot(h: FileHandle, op: '-c' | '-a' | '-d', tag: string, what: string): Promise<void> {
  const fd = h.reopen(constants.O_RDWR);
  try {
    await qemuImg(['snapshot', '-q', op, tag, imageArg(3, 'qcow2')], [fd], what);
  } finally {
    closeSync(fd);
  }
}

/** One `qemu-img snapshot` op on each disk's image in turn (a shut-off guest's revert or delete), each opened after the entrypoint rules. */
export async function qemuImgSnapshotEach(
  disks: readonly DiskDef[],
  entry: Entrypoints,
  op: '-a' | '-d',
  tag: string,
  what: (d: DiskDef) => string,
): Promise<void> {
  for (const d of disks) {
    const h = openImage(d, entry);
    try {
      await qemuImgSnapshot(h, op, tag, what(d));
    } finally {
      h.close();
    }
  }
}

/** Runs a QEMU job (snapshot-save/-load/-delete) to its end and dismisses it; its error is ours. */
export async function runJob(q: QmpClient, command: string, args: Record<string, unknown>, what: string): Promise<void> {
  const id = `svirt-${command}-${Date.now().toString(36)}`;
  await q.execute(command, { 'job-id': id, ...args });
  const deadline = Date.now() + JOB_TIMEOUT_MS;
  for (;;) {
    const jobs = (await q.execute('query-jobs')) as { id: string; status: string; error?: string }[];
    const job = jobs.find((j) => j.id === id);
    if (job === undefined) throw new SvirtError('SVIRT_ERR_QMP', `cannot ${what}: QEMU lost job ${id}`);
    if (job.status === 'concluded' || job.status === 'null') {
      await q.execute('job-dismiss', { id }).catch(() => undefined);
      if (job.error !== undefined) throw new SvirtError('SVIRT_ERR_QMP', `cannot ${what}: ${job.error}`);
      return;
    }
    if (Date.now() > deadline) throw new SvirtError('SVIRT_ERR_TIMEOUT', `cannot ${what}: job ${id} still ${job.status}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** The overlay libvirt would name: the image's path with its extension replaced by the snapshot's name. */
export function defaultOverlay(base: string, snap: string): string {
  const dot = basename(base).lastIndexOf('.');
  const stem = dot > 0 ? base.slice(0, base.length - (basename(base).length - dot)) : base;
  return `${stem}.${snap}`;
}

/** A created overlay: where, and its identity (removed by that identity only). */
export interface MadeOverlay {
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
}

/**
 * Creates the overlay of one disk: the path passes the entrypoint rules, the file is new
 * (O_EXCL|O_NOFOLLOW in its opened directory, 0600 root), and qemu-img writes a qcow2 header
 * with the disk's current image as backing file and the same virtual size.
 */
export async function createOverlay(
  disk: DiskDef,
  file: string,
  base: FileHandle,
  entry: Entrypoints,
  /** Told the new file's identity at once, before qemu-img runs (a live snapshot journals it). */
  onMade?: (made: MadeOverlay) => void,
): Promise<MadeOverlay> {
  if (!isAbsolute(file) || normalize(file) !== file)
    throw new SvirtError('SVIRT_ERR_PATH_INVALID', `snapshot overlay "${file}" is not a normal absolute path`);
  entry.checkPath(resource(file));
  const dir = openHandle(dirname(file), `create the snapshot overlay "${file}" in`);
  let fd: number | undefined;
  let made: MadeOverlay | undefined;
  try {
    if (dir.kind !== 'dir')
      throw new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot create "${file}": its parent is not a directory`);
    const at = `${dir.procPath}/${basename(file)}`;
    try {
      fd = openSync(at, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    } catch (err) {
      const errno = errnoOf(err);
      throw new SvirtError(
        errno === 'EEXIST' ? 'SVIRT_ERR_OPERATION_INVALID' : 'SVIRT_ERR_HOST',
        errno === 'EEXIST' ? `snapshot overlay "${file}" exists already` : `cannot create "${file}": ${errno ?? String(err)}`,
      );
    }
    const st = lstatSync(at);
    made = { path: file, dev: st.dev, ino: st.ino };
    onMade?.(made);
    const baseFd = base.reopen(constants.O_RDONLY);
    let size: number;
    try {
      size = capacityOf(baseFd, disk.format);
    } finally {
      closeSync(baseFd);
    }
    await qemuImg(
      ['create', '-q', '-f', 'qcow2', '-u', '-b', disk.path as string, '-F', disk.format, '/proc/self/fd/3', String(size)],
      [fd],
      `create the snapshot overlay of disk '${disk.target.dev}'`,
    );
    return made;
  } catch (err) {
    if (made !== undefined) removeOverlay(made);
    throw err;
  } finally {
    if (fd !== undefined) closeSync(fd);
    dir.close();
  }
}

/** Removes an overlay svirt made, if the name still holds that very file. */
export function removeOverlay(o: MadeOverlay): void {
  let dir: FileHandle;
  try {
    dir = openHandle(dirname(o.path), 'remove the snapshot overlay in');
  } catch {
    return;
  }
  try {
    const at = `${dir.procPath}/${basename(o.path)}`;
    const st = lstatSync(at);
    if (st.dev === o.dev && st.ino === o.ino) unlinkSync(at);
  } catch {
    // gone already
  } finally {
    dir.close();
  }
}
