/**
 * Image entrypoints (issue 15, the seeds' `vm:entrypoint`): which files may become a guest's
 * disk, kernel, initrd, firmware, nvram, serial log, socket or shared folder. Checked for every
 * resource a definition declares, under every driver (`none` too), in two steps:
 *
 * - `checkPath`, on the resolved path, before svirt creates, opens or labels anything;
 * - `checkOpened`, on the file svirt holds open (an O_PATH fd): what it really is (a host
 *   secret reached through a hard link, a multiply-linked file, its SELinux type) and, for a
 *   guest a non-root user owns, whether that user may open that very file.
 *
 * A refusal names the path and the rule, and leaves the file as it was: nothing is labelled
 * before both checks pass (src/lifecycle/files.ts calls them in openResources).
 */
import { constants, lstatSync } from 'node:fs';
import { dirname, posix } from 'node:path';
import { SvirtError, errnoOf } from '../errors.js';
import type { FileHandle } from '../host/file-handle.js';
import { fgetxattr, openAs, type UserIds } from '../host/native.js';
import { admitByPool, stillInPool, type PoolAdmission, type PoolPathLookup } from './entrypoint-pools.js';
import { FLOOR_DENY, FLOOR_READONLY, type EntrypointRules } from './entrypoint-rules.js';

export {
  DEFAULT_ENTRYPOINT_RULES,
  FLOOR_DENY,
  FLOOR_READONLY,
  parseEntrypointRules,
  type EntrypointRules,
} from './entrypoint-rules.js';
import type { GuestResource, ResourceRole } from '../security/driver.js';

/**
 * The files svirt refuses by identity (device and inode), so a hard link or a bind mount of
 * one is refused where its path would pass. The store's own files are added per state dir.
 */
const HOST_SECRETS: readonly string[] = [
  '/etc/shadow',
  '/etc/shadow-',
  '/etc/gshadow',
  '/etc/gshadow-',
  '/etc/passwd',
  '/etc/passwd-',
  '/etc/group',
  '/etc/group-',
  '/etc/sudoers',
  '/etc/ssh/ssh_host_rsa_key',
  '/etc/ssh/ssh_host_ecdsa_key',
  '/etc/ssh/ssh_host_ed25519_key',
  '/root/.ssh/authorized_keys',
];

/**
 * What svirt keeps in its state dir. The rest of the dir is the user's (images beside the
 * store are common); the store itself is also refused by identity, whatever its path.
 */
const STATE_ENTRIES: readonly string[] = [
  'svirt.db',
  'svirt.db-wal',
  'svirt.db-shm',
  'svirt.db-journal',
  'save.key',
  'access.toml',
  'log',
  'nvram',
  'run',
  'cache',
  'networks',
  'swtpm',
  'managed-save',
];

/** The roles a definition declares; svirt's own files (runtime dir, logs, state) are not entrypoints. */
const DECLARED: ReadonlySet<ResourceRole> = new Set<ResourceRole>([
  'disk',
  'disk-readonly',
  'disk-shareable',
  'backing',
  'kernel',
  'initrd',
  'dtb',
  'loader',
  'nvram',
  'chardev',
  'shared-dir',
  'shared-dir-readonly',
]);

/** Roles QEMU (or virtiofsd) may write through. */
const WRITABLE: ReadonlySet<ResourceRole> = new Set<ResourceRole>(['disk', 'disk-shareable', 'nvram', 'chardev', 'shared-dir']);

function under(path: string, tree: string): boolean {
  return tree === '/' || path === tree || path.startsWith(`${tree}/`);
}

/** Where the check runs: svirt's own trees, the guest's stack and owner. */
export interface EntrypointContext {
  readonly stateDir: string;
  readonly runtimeRoot: string;
  /** The guest's own runtime dir: svirt places its sockets there. */
  readonly runtimeDir: string;
  /** The guest's stack labels with SELinux (then the file's type is checked). */
  readonly selinux: boolean;
  /** The guest's owner, when not root: every file must be one they may open. */
  readonly owner?: UserIds;
  /** The directory of an active storage pool by name, for `pools = [...]` (entrypoint-pools.ts). */
  readonly poolPath?: PoolPathLookup;
}

export class Entrypoints {
  private secrets: { path: string; dev: number; ino: number }[] | undefined;
  /** Paths allowed only as a volume of an allowed pool: checkOpened finds them again through the pool. */
  private readonly byPool = new Map<string, PoolAdmission>();

  constructor(
    readonly rules: EntrypointRules,
    readonly ctx: EntrypointContext,
  ) {}

  /** Whether svirt checks this resource (what a definition declares, not svirt's own files). */
  applies(r: GuestResource): boolean {
    if (!DECLARED.has(r.role)) return false;
    // Sockets and ptys svirt places in the guest's own runtime dir (console-devices.ts).
    return !(r.role === 'chardev' && r.declared === undefined && under(r.path, this.ctx.runtimeDir));
  }

  /** The path rules, on the resolved path, before anything is created or opened. */
  checkPath(r: GuestResource): void {
    if (!this.applies(r)) return;
    const path = r.path;
    const refuse = (why: string): never => {
      throw this.refusal(r, why);
    };
    const own = this.ownTrees().find((t) => under(path, t));
    if (own !== undefined && !(r.role === 'nvram' && own === posix.join(this.ctx.stateDir, 'nvram'))) {
      refuse(`"${own}" is svirt's own state`);
    }
    const floor = FLOOR_DENY.find((t) => under(path, t));
    if (floor !== undefined && own === undefined) refuse(`it is inside "${floor}", which no guest may use (the fixed floor)`);
    const denied = this.rules.deny.find((t) => under(path, t));
    if (denied !== undefined) refuse(`it is inside "${denied}" (entrypoints.deny)`);
    if (own === undefined && !this.rules.allow.some((t) => under(path, t))) {
      const pool = admitByPool(path, this.rules.pools, this.ctx.poolPath);
      if (pool === undefined) {
        const pools =
          this.rules.pools.length > 0 ? ` or a volume of entrypoints.pools = ${JSON.stringify(this.rules.pools)}` : '';
        refuse(`it is inside no allowed tree (entrypoints.allow = ${JSON.stringify(this.rules.allow)})${pools}`);
      } else {
        this.byPool.set(path, pool);
      }
    }
    if (WRITABLE.has(r.role)) {
      const ro = [...FLOOR_READONLY, ...this.rules.readonly].find((t) => under(path, t));
      if (ro !== undefined) {
        const rule = FLOOR_READONLY.includes(ro) ? 'the fixed floor' : 'entrypoints.readonly';
        refuse(`"${ro}" may only be read by guests, and a ${r.role} is written (${rule})`);
      }
    }
    if (this.ctx.owner !== undefined) this.ownerMayCreate(r);
  }

  /** What the opened file is: a host secret, a multiply-linked file, its SELinux type, its owner's access. */
  checkOpened(r: GuestResource, h: FileHandle): void {
    if (!this.applies(r)) return;
    const st = h.stats;
    const pool = this.byPool.get(r.path);
    if (pool !== undefined) {
      const problem = stillInPool(pool, r.path, h);
      if (problem !== undefined) throw this.refusal(r, `${problem} (entrypoints.pools)`);
    }
    const secret = this.hostSecrets().find((s) => s.dev === st.dev && s.ino === st.ino);
    if (secret !== undefined) throw this.refusal(r, `it is "${secret.path}" itself (device ${st.dev}, inode ${st.ino})`);
    if (st.isFile() && st.nlink > 1 && !this.rules.hardLinks) {
      throw this.refusal(
        r,
        `it has ${st.nlink} hard links, so it is also a file no rule was asked about (entrypoints.hard_links = false)`,
      );
    }
    if (st.isBlockDevice() && !this.rules.blockDevices)
      throw this.refusal(r, 'it is a block device (entrypoints.block_devices = false)');
    if (this.ctx.selinux) this.checkType(r, h);
    if (this.ctx.owner !== undefined) this.ownerMayOpen(r, h, this.ctx.owner);
  }

  private checkType(r: GuestResource, h: FileHandle): void {
    let raw: Buffer | undefined;
    try {
      raw = fgetxattr(h.fd, 'security.selinux');
    } catch (err) {
      // A filesystem without xattrs: only outside an SELinux kernel, which labels every file.
      if (errnoOf(err) === 'EOPNOTSUPP' || errnoOf(err) === 'ENOTSUP') return;
      throw err;
    }
    if (raw === undefined) return;
    const type = raw.toString('utf8').replace(/\0+$/u, '').split(':')[2];
    if (type === undefined || !this.rules.selinuxTypes.includes(type)) {
      throw this.refusal(r, `its SELinux type ${type ?? '(none)'} is not one a guest may use (entrypoints.selinux_types)`);
    }
  }

  /** A file that does not exist yet (a log, a socket svirt binds): its owner must be able to create it. */
  private ownerMayCreate(r: GuestResource): void {
    const owner = this.ctx.owner as UserIds;
    try {
      lstatSync(r.path);
      return; // it exists: checkOpened asks about the file itself
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') return; // openHandle reports it
    }
    const dir = dirname(r.path);
    const res = openAs(dir, 0, owner, constants.W_OK | constants.X_OK);
    if (res.errno !== 0) throw this.refusal(r, `its owner (uid ${owner.uid}) may not create it in "${dir}" (${res.errno})`);
  }

  private ownerMayOpen(r: GuestResource, h: FileHandle, owner: UserIds): void {
    const write = WRITABLE.has(r.role);
    if (h.kind === 'socket') {
      const res = openAs(r.path, 0, owner, constants.R_OK | constants.W_OK);
      if (res.errno !== 0) throw this.refusal(r, `its owner (uid ${owner.uid}) may not use the socket (${res.errno})`);
      return;
    }
    const flags = h.kind === 'dir' ? constants.O_RDONLY | constants.O_DIRECTORY : write ? constants.O_RDWR : constants.O_RDONLY;
    const res = openAs(r.path, flags | constants.O_NOFOLLOW, owner);
    const how = write ? 'read and write' : 'read';
    if (res.errno !== 0) throw this.refusal(r, `its owner (uid ${owner.uid}) may not ${how} it (${res.errno})`);
    if (res.dev !== h.stats.dev || res.ino !== h.stats.ino) {
      throw this.refusal(r, `its owner (uid ${owner.uid}) reached another file at that path (it changed while svirt looked)`);
    }
  }

  /** svirt's own files and trees: the store, keys, logs, other guests' nvram and runtime dirs. */
  private ownTrees(): string[] {
    return [...STATE_ENTRIES.map((e) => posix.join(this.ctx.stateDir, e)), this.ctx.runtimeRoot];
  }

  private hostSecrets(): { path: string; dev: number; ino: number }[] {
    if (this.secrets) return this.secrets;
    const store = ['svirt.db', 'svirt.db-wal', 'svirt.db-shm'].map((f) => posix.join(this.ctx.stateDir, f));
    this.secrets = [];
    for (const path of [...HOST_SECRETS, ...store]) {
      try {
        // absent on this host (undefined, no ENOENT thrown): nothing to compare with
        const st = lstatSync(path, { throwIfNoEntry: false });
        if (st?.isFile()) this.secrets.push({ path, dev: st.dev, ino: st.ino });
      } catch {
        // not ours to look at: nothing to compare with
      }
    }
    return this.secrets;
  }

  private refusal(r: GuestResource, why: string): SvirtError {
    const shown =
      r.declared !== undefined && r.declared !== r.path ? `"${r.declared}" (it resolves to "${r.path}")` : `"${r.path}"`;
    return new SvirtError('SVIRT_ERR_PATH_INVALID', `refusing ${r.role} ${shown}: ${why}`, {
      details: { path: r.declared ?? r.path, resolved: r.path, role: r.role, reason: why },
    });
  }
}
