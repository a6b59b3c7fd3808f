/**
 * The destination's own images for `--copy-storage-all` (docs/migration.md, "Copying the
 * storage"). Each copied disk's file, at the path the destination's definition names, is
 * either an existing regular file of exactly the source's format and virtual size, or it is
 * created here (as libvirt pre-creates a missing one): `O_CREAT|O_EXCL|O_NOFOLLOW` inside its
 * opened directory, mode 0600, root's, then sized (raw) or formatted by qemu-img on the fd
 * (qcow2). A created image is journalled and removed — by its identity, through its opened
 * directory — if the guest does not stay; an existing one is only labelled, as any start does.
 */
import { closeSync, constants, fstatSync, ftruncateSync, openSync, unlinkSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { DomainDef } from '../../domain/domain-def.js';
import { SvirtError } from '../../errors.js';
import { openHandle, withHandle, type FileHandle } from '../../host/file-handle.js';
import { assertCopyable, copiedDisks, virtualSize, type CopyStorage, type CreatedImage } from './copy-storage.js';

/** The copied disks of the destination's definition, each with what the source says of it. */
function pairs(def: DomainDef, copy: CopyStorage) {
  const out = [];
  for (const d of copy.disks) {
    const disk = def.disks.find((x) => x.target.dev === d.dev);
    if (!disk || !copiedDisks(def).includes(disk))
      throw new SvirtError(
        'SVIRT_ERR_MIGRATE',
        `disk ${d.dev}: the destination's definition has no writable disk to copy it into`,
      );
    if (disk.format !== d.format)
      throw new SvirtError(
        'SVIRT_ERR_MIGRATE',
        `disk ${d.dev}: the source copies a ${d.format} image, the definition says ${disk.format}`,
      );
    assertCopyable(disk, undefined);
    out.push({ disk, path: disk.path as string, want: d });
  }
  for (const disk of copiedDisks(def)) {
    if (!copy.disks.some((d) => d.dev === disk.target.dev))
      throw new SvirtError('SVIRT_ERR_MIGRATE', `disk ${disk.target.dev}: the source does not copy it`);
  }
  return out;
}

/**
 * Checks or creates every copied disk's image; returns those it created. A failure removes
 * what it created and leaves the rest as it found it.
 */
export async function prepareDestImages(def: DomainDef, copy: CopyStorage, sameKernel: boolean): Promise<CreatedImage[]> {
  const created: CreatedImage[] = [];
  try {
    for (const { path, want } of pairs(def, copy)) {
      let h: FileHandle | undefined;
      try {
        h = openHandle(path, 'copy into');
      } catch (err) {
        if (!(err instanceof SvirtError && err.details['errno'] === 'ENOENT')) throw err;
      }
      if (h === undefined) {
        created.push(await createImage(path, want.format, want.capacity));
        continue;
      }
      try {
        if (h.kind !== 'file')
          throw new SvirtError(
            'SVIRT_ERR_MIGRATE',
            `"${path}": --copy-storage-all copies into a regular file here, not a ${h.kind}`,
          );
        if (sameKernel && h.stats.dev === want.fileDev && h.stats.ino === want.ino)
          throw new SvirtError(
            'SVIRT_ERR_MIGRATE',
            `"${path}" is the source's own image: the hosts share this storage (migrate without --copy-storage-all, or name another file with --xml)`,
          );
        const fd = h.reopen(constants.O_RDONLY);
        try {
          const size = virtualSize(fd, want.format, h.current().size, path);
          if (size !== want.capacity)
            throw new SvirtError(
              'SVIRT_ERR_MIGRATE',
              `"${path}" holds ${size} bytes, the source's disk ${want.dev} ${want.capacity}: not copied into (remove it, or make it that size)`,
            );
        } finally {
          closeSync(fd);
        }
      } finally {
        h.close();
      }
    }
  } catch (err) {
    removeCreated(created);
    throw err;
  }
  return created;
}

async function createImage(path: string, format: 'raw' | 'qcow2', capacity: number): Promise<CreatedImage> {
  const dir = openHandle(dirname(path), 'create an image in');
  let fd: number;
  try {
    if (dir.kind !== 'dir')
      throw new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot create "${path}": its parent is not a directory`);
    fd = openSync(
      `${dir.procPath}/${basename(path)}`,
      constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_RDWR,
      0o600,
    );
  } catch (err) {
    if (err instanceof SvirtError) throw err;
    throw new SvirtError('SVIRT_ERR_HOST', `cannot create "${path}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`, {
      cause: err,
    });
  } finally {
    dir.close();
  }
  const st = fstatSync(fd);
  const made: CreatedImage = { path, dev: st.dev, ino: st.ino };
  try {
    if (format === 'raw') ftruncateSync(fd, capacity);
    else {
      const { createQcow2 } = await import('../../storage/qemu-img.js');
      await createQcow2(fd, capacity, false, `create "${path}"`);
    }
  } catch (err) {
    removeCreated([made]);
    throw err;
  } finally {
    closeSync(fd);
  }
  return made;
}

/** Removes images this host created, each only while its path still names that file. */
export function removeCreated(created: readonly CreatedImage[]): void {
  for (const c of created) {
    let dir: FileHandle;
    try {
      dir = openHandle(dirname(c.path), 'remove an image from');
    } catch {
      continue; // its directory is gone: so is the image
    }
    try {
      const same = withHandle({ path: c.path, ident: { dev: c.dev, ino: c.ino } }, 'remove', () => true);
      if (same === true) unlinkSync(`${dir.procPath}/${basename(c.path)}`);
    } catch {
      // gone already, or the path names another file now (FileChangedError): left alone
    } finally {
      dir.close();
    }
  }
}
