/**
 * The world the driver conformance suite runs in: a symlink-free temp tree of real files
 * with real owners, modes and xattrs (security.selinux, a trusted.* of its own), the real
 * SQLite store as LabelMemory and LabelReservations, and resources opened as the lifecycle
 * opens them (an O_PATH handle each, no symlink on the way). Snapshots read everything a
 * driver may change on a file, so "exactly as before" is a deepEqual.
 */
import type { TestContext } from 'node:test';
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { DomainDef } from '../../src/domain/domain-def.js';
import { openHandle, type FileHandle } from '../../src/host/file-handle.js';
import { lgetxattr, llistxattr, lsetxattr } from '../../src/host/native.js';
import type { GuestResource, LabelMemory, ResourceRole, SecurityContext } from '../../src/security/driver.js';
import { Store } from '../../src/store/store.js';
import { removeTree, tempRoot } from '../support/apparmor.js';
import { domain } from '../support/selinux.js';

export const HOME = 'system_u:object_r:user_home_t:s0';
export const BOOT = 'system_u:object_r:boot_t:s0';
export const SHADOW = 'system_u:object_r:shadow_t:s0';
/** A trusted.* xattr no driver owns: it must survive labelling and restoring untouched. */
export const FOREIGN_XATTR = 'trusted.conformance.kept';

/** Everything a driver may change on a file. */
export interface FileState {
  readonly type: string;
  readonly uid: number;
  readonly gid: number;
  readonly mode: string;
  readonly dev: number;
  readonly ino: number;
  readonly xattrs: Readonly<Record<string, string>>;
  readonly content?: string;
}

export function fileState(path: string): FileState | 'absent' {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return 'absent'; // ENOENT: a file that is not there is part of the picture too
  }
  const xattrs: Record<string, string> = {};
  for (const name of llistxattr(path).sort()) xattrs[name] = lgetxattr(path, name)?.toString('hex') ?? '';
  const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
  return {
    type,
    uid: st.uid,
    gid: st.gid,
    mode: (st.mode & 0o7777).toString(8),
    dev: st.dev,
    ino: st.ino,
    xattrs,
    ...(type === 'file' ? { content: readFileSync(path, 'utf8') } : {}),
  };
}

export function snapshot(paths: readonly string[]): Record<string, FileState | 'absent'> {
  return Object.fromEntries(paths.map((p) => [p, fileState(p)]));
}

/** One file of the tree: where, whose, and the label it starts with. */
interface Spec {
  readonly rel: string;
  readonly role: ResourceRole;
  readonly uid: number;
  readonly mode: number;
  readonly label?: string;
  readonly dir?: boolean;
}

/** The guest's files. Only the disk sits in images/: the directory-swap case replaces that directory. */
const GUEST: Readonly<Record<'runtime' | 'disk' | 'nvram' | 'serial' | 'iso' | 'kernel', Spec>> = {
  runtime: { rel: 'run/guest', role: 'runtime-dir', uid: 0, mode: 0o700, dir: true },
  disk: { rel: 'images/a.img', role: 'disk', uid: 1000, mode: 0o644, label: HOME },
  nvram: { rel: 'nvram/VARS.fd', role: 'nvram', uid: 1000, mode: 0o600 },
  serial: { rel: 'log/serial.log', role: 'chardev', uid: 1000, mode: 0o640, label: HOME },
  iso: { rel: 'media/cd.iso', role: 'disk-readonly', uid: 0, mode: 0o644 },
  kernel: { rel: 'boot/vmlinuz', role: 'kernel', uid: 0, mode: 0o644, label: BOOT },
};
const HOT: Spec = { rel: 'hot/b.img', role: 'disk', uid: 1000, mode: 0o644, label: HOME };

export type GuestFile = keyof typeof GUEST;

export interface World {
  readonly root: string;
  readonly store: Store;
  readonly warnings: string[];
  /** `driver path` of every remember() call, in order: what was labelled, even if undone since. */
  readonly remembered: string[];
  readonly def: DomainDef;
  /** Absolute path of a guest file, or of the hotplugged one. */
  path(file: GuestFile | 'hot'): string;
  /** Every path a snapshot covers: the guest's files, the hotplugged one, the victims. */
  readonly watched: string[];
  ctx(def?: DomainDef): SecurityContext;
  /** The guest's resources, each opened as the lifecycle opens it (closed after the test). */
  resources(): GuestResource[];
  /** One resource for a path, opened (or, when it does not exist, without a handle). */
  resource(path: string, role: ResourceRole): GuestResource;
  /** Creates a file of root's, labelled shadow_t: a file no guest may be handed. */
  victim(rel: string): string;
}

export function world(t: TestContext): World {
  const root = tempRoot('svirt-conformance-');
  const store = Store.open(join(root, 'state'));
  const handles: FileHandle[] = [];
  t.after(() => {
    for (const h of handles) h.close();
    // As a stop does: the labels go back to the host (their host-wide claims with them).
    for (const uuid of store.reservedNotRunning()) store.releaseReservations(uuid);
    store.close();
    removeTree(root);
  });
  const make = (s: Spec): string => {
    const p = join(root, s.rel);
    mkdirSync(s.dir ? p : dirname(p), { recursive: true });
    if (!s.dir) writeFileSync(p, `${s.rel}\n`);
    chownSync(p, s.uid, s.uid);
    chmodSync(p, s.mode);
    if (s.label !== undefined) lsetxattr(p, 'security.selinux', `${s.label}\0`);
    lsetxattr(p, FOREIGN_XATTR, 'kept');
    return p;
  };
  for (const s of Object.values(GUEST)) make(s);
  make(HOT);
  const warnings: string[] = [];
  const remembered: string[] = [];
  // The real store, with a log of what drivers remembered (a rollback leaves no row to see).
  const memory: LabelMemory = {
    remember: (driver, path, uuid, original) => {
      remembered.push(`${driver} ${path}`);
      return store.remember(driver, path, uuid, original);
    },
    // A start's first pass (noted originals, one sync), as the real store has it.
    rememberUnsynced: (driver, path, uuid, original) => store.rememberUnsynced(driver, path, uuid, original),
    syncRemembered: () => store.syncRemembered(),
    recall: (driver, path) => store.recall(driver, path),
    release: (driver, path, uuid) => store.release(driver, path, uuid),
    forget: (driver, path) => store.forget(driver, path),
  };
  const def = domain('conformance', 1);
  const watched = [...Object.values(GUEST), HOT].map((s) => join(root, s.rel));
  const w: World = {
    root,
    store,
    warnings,
    remembered,
    def,
    watched,
    path: (file) => join(root, (file === 'hot' ? HOT : GUEST[file]).rel),
    ctx: (d = def) => ({
      runtimeDir: d === def ? join(root, GUEST.runtime.rel) : join(root, 'run', d.name),
      runtimeRoot: join(root, 'run'),
      memory,
      reservations: store,
      virtType: 'qemu',
      emulator: '/usr/bin/qemu-system-x86_64',
      warn: (m) => warnings.push(m),
    }),
    resource(path, role) {
      let handle: FileHandle | undefined;
      try {
        handle = openHandle(path, 'open');
        handles.push(handle);
      } catch {
        handle = undefined; // a missing file: the driver meets it as the lifecycle would not (the failure cases)
      }
      return handle ? { path, role, seclabels: [], handle } : { path, role, seclabels: [] };
    },
    resources: () => Object.values(GUEST).map((s) => w.resource(join(root, s.rel), s.role)),
    victim(rel) {
      const p = make({ rel, role: 'disk', uid: 0, mode: 0o600, label: SHADOW });
      watched.push(p);
      return p;
    },
  };
  return w;
}

/** The stored form after a start: the identity instead of the handle (what stop reads back). */
export function stored(resources: readonly GuestResource[]): GuestResource[] {
  return resources.map((r) => {
    if (!r.handle) return r;
    const { handle, ...rest } = r;
    return { ...rest, ident: handle.identity };
  });
}
