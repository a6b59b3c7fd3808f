import { lstatSync } from 'node:fs';
import type { DomainDef } from '../domain/domain-def.js';
import { FileChangedError, reopenIdentity, type FileHandle } from '../host/file-handle.js';
import type { GuestResource, SecurityContext, SecurityDriver } from './driver.js';

/**
 * Reopens each remembered file by its path with no symlink on the way and checks it is the
 * file that was labelled (device + inode), for the manager's restores. One that changed (a
 * directory swapped for a link, a file replaced) is reported and left alone: the guest's
 * use of it is forgotten in every driver's memory, and no driver touches whatever the path
 * names now. A resource that already has its handle is used as it is.
 */
export function openForRestore(
  def: DomainDef,
  resources: readonly GuestResource[],
  ctx: SecurityContext,
  drivers: readonly SecurityDriver[],
): { list: GuestResource[]; close(): void } {
  const handles: FileHandle[] = [];
  const list: GuestResource[] = [];
  for (const r of resources) {
    if (r.handle) {
      list.push(r);
      continue;
    }
    try {
      const h = reopenIdentity(r.path, r.ident, 'restore');
      if (h) handles.push(h);
      list.push(h ? { ...r, handle: h } : r);
    } catch (err) {
      if (!(err instanceof FileChangedError)) {
        list.push(r); // the driver reports it (and the record stays for a retry)
        continue;
      }
      if (!replacedByItsProgram(r)) (ctx.warn ?? defaultWarn)(`${def.name}: ${err.message}`);
      for (const d of drivers) {
        if (ctx.memory.release(d.name, r.path, def.uuid) !== undefined) ctx.memory.forget(d.name, r.path);
      }
    }
  }
  return { list, close: () => handles.forEach((h) => h.close()) };
}

/**
 * swtpm saves its state by writing a new file and renaming it over the old one: a TPM state
 * file that is another regular file now is the guest's own new state (in a directory that is
 * root's again once the guest stops), not a swap to report.
 */
function replacedByItsProgram(r: GuestResource): boolean {
  if (r.role !== 'tpm-state') return false;
  try {
    return lstatSync(r.path).isFile();
  } catch {
    return false; // gone: reported like any other
  }
}

function defaultWarn(message: string): void {
  process.stderr.write(`warning: ${message}\n`);
}
