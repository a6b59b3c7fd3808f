/**
 * Sets and restores `security.selinux` on real files. The original label is remembered
 * twice: in the store (LabelMemory, the journal and the reference count across guests)
 * and in the file's `trusted.svirt.selinux` xattr (it travels with the file, and a set
 * after a crash that lost the store row still finds the true original there).
 */
import { errnoOf, osError, SvirtError } from '../../errors.js';
import { withHandle, type FileRef } from '../../host/file-handle.js';
import type { LabelMemory } from '../driver.js';
import { formatContext, isContext, parseContext } from './contexts.js';

/** The xattr calls of src/host/native.ts this driver uses. */
export interface XattrHost {
  lgetxattr(path: string, name: string): Buffer | undefined;
  lsetxattr(path: string, name: string, value: Buffer | string): void;
  lremovexattr(path: string, name: string): void;
  fgetxattr(fd: number, name: string): Buffer | undefined;
  fsetxattr(fd: number, name: string, value: Buffer | string): void;
  fremovexattr(fd: number, name: string): void;
}

export const SELINUX_XATTR = 'security.selinux';
export const REMEMBER_XATTR = 'trusted.svirt.selinux';
/** The remembered "original" of a file that had no `security.selinux` at all. */
export const NO_LABEL = '<none>';

/** An open file: an O_PATH fd (the native xattr calls accept one), or a path for l* calls. */
type Target = { readonly fd: number } | { readonly path: string };

function unsupported(err: unknown): boolean {
  const e = errnoOf(err);
  return e === 'ENOTSUP' || e === 'EOPNOTSUPP';
}

/** A label read from an xattr: trailing NULs (libselinux writes one) dropped. */
function decode(buf: Buffer | undefined): string | undefined {
  if (buf === undefined) return undefined;
  let end = buf.length;
  while (end > 0 && buf[end - 1] === 0) end--;
  return buf.subarray(0, end).toString('utf8');
}

/** The canonical spelling when the text is a context, else the text as it is. */
function canonical(label: string): string {
  try {
    return formatContext(parseContext(label));
  } catch {
    // Not a context svirt could have written (a foreign label): compared verbatim.
    return label;
  }
}

/** `no-label-support`: the file's filesystem takes no SELinux label (NFS, CIFS); it is used as it is. */
export type SetOutcome = 'labelled' | 'unchanged' | 'missing' | 'no-label-support';
export type RestoreOutcome = 'restored' | 'still-used' | 'not-remembered' | 'gone' | 'no-label-support';

export class FileLabeller {
  constructor(private readonly x: XattrHost) {}

  /**
   * Acts on the resource's own handle, or reopens its path with no symlink on the way and,
   * when its identity is known, only if it is still the same file. A missing file is ENOENT.
   */
  private withTarget<T>(ref: FileRef, fn: (t: Target) => T): T {
    let out: { value: T } | undefined;
    try {
      out = withHandle(ref, 'label', (h) => ({ value: fn({ fd: h.fd }) }));
    } catch (err) {
      // Opening failed: reported as the errno it was (ELOOP, EACCES...), like any label error.
      const errno = err instanceof SvirtError && err.code !== 'SVIRT_ERR_FILE_CHANGED' ? err.details['errno'] : undefined;
      if (typeof errno === 'string') throw Object.assign(new Error(`${errno}: "${ref.path}"`), { code: errno });
      throw err;
    }
    if (out === undefined) throw Object.assign(new Error(`ENOENT: "${ref.path}" does not exist`), { code: 'ENOENT' });
    return out.value;
  }

  private get(t: Target, name: string): string | undefined {
    return decode('fd' in t ? this.x.fgetxattr(t.fd, name) : this.x.lgetxattr(t.path, name));
  }

  /** The remembered original in the file, if its filesystem has trusted.* xattrs (NFS has not). */
  private stash(t: Target): string | undefined {
    try {
      return this.get(t, REMEMBER_XATTR);
    } catch (err) {
      if (unsupported(err)) return undefined;
      throw err;
    }
  }

  private put(t: Target, name: string, value: string): void {
    if ('fd' in t) this.x.fsetxattr(t.fd, name, value);
    else this.x.lsetxattr(t.path, name, value);
  }

  private remove(t: Target, name: string): void {
    if ('fd' in t) this.x.fremovexattr(t.fd, name);
    else this.x.lremovexattr(t.path, name);
  }

  /** The current label of `path`, or undefined when it has none. */
  current(ref: FileRef): string | undefined {
    const path = ref.path;
    try {
      return this.withTarget(ref, (t) => this.get(t, SELINUX_XATTR));
    } catch (err) {
      throw osError('SVIRT_ERR_HOST', 'read the label of', path, err);
    }
  }

  /**
   * Gives a file that lives only as long as the guest (a pty QEMU made) the label `wanted`,
   * remembering nothing: there is nothing to give back.
   */
  setUnremembered(ref: FileRef, wanted: string): SetOutcome {
    try {
      return this.withTarget(ref, (t): SetOutcome => {
        try {
          this.put(t, SELINUX_XATTR, `${wanted}\0`);
        } catch (err) {
          if (unsupported(err)) return 'no-label-support';
          throw err;
        }
        return 'labelled';
      });
    } catch (err) {
      throw osError('SVIRT_ERR_LABEL_APPLY', 'label', ref.path, err);
    }
  }

  /**
   * Gives `path` the label `wanted` for guest `uuid`, remembering its original first.
   * A path other guests use with a different label is a conflict (relabelling it would
   * cut them off or let this guest in). `missingOk`: a path that does not exist yet (a
   * socket QEMU will create) is skipped. A file on a filesystem without labels is left as
   * it is and nothing is remembered for it, as libvirt does (virSecuritySELinuxSetFileconImpl):
   * the policy's type for that filesystem and its boolean (virt_use_nfs...) decide access.
   */
  set(ref: FileRef, wanted: string, uuid: string, memory: LabelMemory, missingOk = false): SetOutcome {
    const path = ref.path;
    let remembered = false;
    try {
      return this.withTarget(ref, (t): SetOutcome => {
        let raw: string | undefined;
        try {
          raw = this.get(t, SELINUX_XATTR);
        } catch (err) {
          // Without SELinux in the kernel, not even a label can be read from such a filesystem.
          if (unsupported(err)) return 'no-label-support';
          throw err;
        }
        const current = raw === undefined ? NO_LABEL : canonical(raw);
        const rec = memory.recall('selinux', path);
        const others = rec?.users.filter((u) => u !== uuid) ?? [];
        if (others.length > 0 && current !== wanted) {
          throw new SvirtError(
            'SVIRT_ERR_LABEL_CONFLICT',
            `cannot label "${path}": guest ${others.join(', ')} uses it with label ${current}`,
            { details: { path, wanted, current, users: others } },
          );
        }
        const stashed = this.stash(t);
        const stashValid = stashed !== undefined && (stashed === NO_LABEL || isContext(stashed));
        const original = rec?.original ?? (stashValid ? stashed : current);
        const inForce = memory.remember('selinux', path, uuid, original);
        remembered = true;
        let stashWritten = false;
        if (stashed !== inForce) {
          try {
            this.put(t, REMEMBER_XATTR, inForce);
            stashWritten = true;
          } catch (err) {
            // A filesystem without trusted.* xattrs (NFS): the store row alone remembers.
            if (!unsupported(err)) throw err;
          }
        }
        if (current === wanted) return 'unchanged';
        try {
          this.put(t, SELINUX_XATTR, `${wanted}\0`);
        } catch (err) {
          // With SELinux in the kernel a label reads back (the policy's, for the whole
          // filesystem) and only the write says the filesystem keeps none.
          if (!unsupported(err)) throw err;
          this.unremember(t, path, uuid, memory, stashWritten);
          remembered = false;
          return 'no-label-support';
        }
        return 'labelled';
      });
    } catch (err) {
      if (missingOk && errnoOf(err) === 'ENOENT') return 'missing';
      if (remembered) {
        try {
          this.restore(ref, uuid, memory);
        } catch {
          // The set error below is the one to report; the memory row lets a repair retry.
        }
      }
      if (err instanceof SvirtError) throw err;
      throw osError('SVIRT_ERR_LABEL_APPLY', 'label', path, err);
    }
  }

  /** Undoes the remembering of a file that turned out to take no label: nothing to restore. */
  private unremember(t: Target, path: string, uuid: string, memory: LabelMemory, stashWritten: boolean): void {
    if (memory.release('selinux', path, uuid) !== undefined) memory.forget('selinux', path);
    if (!stashWritten) return;
    try {
      this.remove(t, REMEMBER_XATTR);
    } catch {
      // A stash without a store row is only read back as a valid context, and this file has none.
    }
  }

  /**
   * Drops `uuid`'s use of `path`; when no guest uses it any more, puts the original back
   * (removing the label when there was none) and forgets it. Idempotent: a second call,
   * or one for a path never labelled, does nothing.
   */
  restore(ref: FileRef, uuid: string, memory: LabelMemory): RestoreOutcome {
    const path = ref.path;
    const rec = memory.recall('selinux', path);
    if (rec === undefined) return 'not-remembered';
    let original: string | undefined;
    if (rec.users.includes(uuid)) {
      original = memory.release('selinux', path, uuid);
      if (original === undefined) return 'still-used';
    } else if (rec.users.length > 0) {
      return 'still-used';
    } else {
      // No user left but not forgotten: a restore interrupted after release; finish it.
      original = rec.original;
    }
    try {
      this.withTarget(ref, (t) => {
        if (original === NO_LABEL) this.remove(t, SELINUX_XATTR);
        else this.put(t, SELINUX_XATTR, `${original}\0`);
        try {
          this.remove(t, REMEMBER_XATTR);
        } catch (err) {
          // Never written on a filesystem without trusted.* xattrs.
          if (!unsupported(err)) throw err;
        }
      });
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') {
        // The file is gone (a socket QEMU removed, a deleted state file): nothing to restore.
        memory.forget('selinux', path);
        return 'gone';
      }
      if (unsupported(err)) {
        // Remembered by a set that stopped before it found the filesystem keeps no label.
        memory.forget('selinux', path);
        return 'no-label-support';
      }
      throw osError('SVIRT_ERR_LABEL_RESTORE', 'restore the label of', path, err);
    }
    memory.forget('selinux', path);
    return 'restored';
  }
}
