// Long file: every storage pool and volume step (pool-define ... vol-download) in one order, over one store table
/**
 * Storage pools of type `dir` and their volumes (issue 14, docs/storage.md). A pool is a
 * directory svirt was told about; its volumes are the regular files in it. Pools and the
 * declared format of each volume svirt made live in the store (src/store/pools.ts); the files
 * are acted on through the pool's opened directory (src/storage/volume-files.ts) and qemu-img
 * over fds (src/storage/qemu-img.ts). A volume in use by a running guest is labelled for it by
 * the guest's start (it is a disk like any other) and cannot be deleted, resized or written.
 */
import { closeSync, fstatSync, fsyncSync, mkdirSync, rmdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FLOOR_DENY, FLOOR_READONLY } from '../access/entrypoint-rules.js';
import { SvirtError, errnoOf } from '../errors.js';
import { PoolStore, type StoredPool } from '../store/pools.js';
import { convertInto, createQcow2, resizeQcow2 } from '../storage/qemu-img.js';
import {
  formatPoolXml,
  formatVolumeXml,
  parsePoolXml,
  parseVolumeXml,
  type PoolDef,
  type VolumeFacts,
  type VolumeFormat,
  type VolumeSpec,
} from '../storage/storage-xml.js';
import { capacityOf, noVolume, PoolDir, truncateRaw, type VolumeStat } from '../storage/volume-files.js';
import type { LifecycleEnv } from './env.js';

export const DEFAULT_POOL = 'default';
/** VIR_STORAGE_VOL_RESIZE_* */
export const RESIZE_ALLOCATE = 1;
export const RESIZE_DELTA = 2;
export const RESIZE_SHRINK = 4;

/** svirt's own entries of its state dir: never a pool, never inside one (entrypoints.ts has the same list). */
const STATE_ENTRIES = ['log', 'nvram', 'run', 'cache', 'networks', 'swtpm'];

export interface PoolInfo {
  readonly def: PoolDef;
  readonly active: boolean;
  readonly autostart: boolean;
}

export interface VolumeInfo extends VolumeFacts {
  readonly pool: string;
  readonly dev: number;
  readonly ino: number;
  readonly nlink: number;
}

export function noPool(name: string): SvirtError {
  return new SvirtError('SVIRT_ERR_NO_STORAGE_POOL', `Storage pool not found: no storage pool with matching name '${name}'`);
}

function under(path: string, tree: string): boolean {
  return path === tree || path.startsWith(tree === '/' ? '/' : `${tree}/`);
}

export class StoragePools {
  readonly store: PoolStore;

  /**
   * `makeDefault`: whether asking for the default pool makes it. Not for a read-only caller
   * (the -ro socket, VIR_CONNECT_RO): it may look, never write; to it the pool is missing.
   */
  constructor(
    private readonly env: LifecycleEnv,
    private readonly makeDefaultOnUse = true,
  ) {
    this.store = new PoolStore(env.store.db);
  }

  // ---- pools ---------------------------------------------------------------------------

  private info(p: StoredPool): PoolInfo {
    return { def: parsePoolXml(p.xml), active: p.active, autostart: p.autostart };
  }

  private find(nameOrUuid: string): StoredPool {
    const p = this.store.byName(nameOrUuid) ?? this.store.byUuid(nameOrUuid.toLowerCase());
    if (p) return p;
    // The default pool is made the first time someone asks for it, as virt-install expects.
    if (nameOrUuid === DEFAULT_POOL && this.makeDefaultOnUse) return this.makeDefault();
    throw noPool(nameOrUuid);
  }

  get(nameOrUuid: string): PoolInfo {
    return this.info(this.find(nameOrUuid));
  }

  /** Every pool; the default pool is made first if there is none (virt-install looks for it by listing). */
  list(): PoolInfo[] {
    if (this.makeDefaultOnUse && !this.store.byName(DEFAULT_POOL)) {
      try {
        this.makeDefault();
      } catch (err) {
        // Listing still works without it; asking for `default` by name says why it cannot be made.
        this.env.warn(`cannot make the default storage pool: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return this.store.list().map((p) => this.info(p));
  }

  /** `<state dir>/images`, 0711 root (libvirt's /var/lib/libvirt/images), started and autostart. */
  private makeDefault(): StoredPool {
    const path = join(this.env.paths.stateDir, 'images');
    const xml = `<pool type='dir'><name>${DEFAULT_POOL}</name><target><path>${path}</path><permissions><mode>0711</mode></permissions></target></pool>`;
    const def = this.define(xml);
    this.build(def.name);
    this.store.setActive(def.uuid, true);
    this.store.setAutostart(def.uuid, true);
    return this.find(def.uuid);
  }

  /** Why a directory cannot be a pool (svirt's state, the host's own trees), or undefined. */
  private pathProblem(path: string): string | undefined {
    const state = this.env.paths.stateDir.replace(/\/+$/, '');
    for (const t of [...FLOOR_DENY, ...FLOOR_READONLY])
      if (under(path, t)) return `it is inside "${t}", where no guest image may be`;
    if (under(state, path)) return `it holds svirt's own state ("${state}")`;
    for (const e of STATE_ENTRIES) if (under(path, join(state, e))) return `it is inside svirt's own "${join(state, e)}"`;
    if (under(path, this.env.paths.runtimeRoot)) return "it is inside svirt's runtime directory";
    return undefined;
  }

  /** `pool-define`: name and uuid unique, one pool per directory. */
  define(xml: string): PoolDef {
    const def = parsePoolXml(xml);
    const problem = this.pathProblem(def.path);
    if (problem !== undefined) {
      throw new SvirtError('SVIRT_ERR_PATH_INVALID', `storage pool '${def.name}': "${def.path}" cannot be a pool: ${problem}`);
    }
    return this.env.store.tx(() => {
      const same = this.store.byName(def.name);
      if (same && same.uuid !== def.uuid) {
        throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `pool '${def.name}' already exists with uuid ${same.uuid}`);
      }
      const other = this.store.byUuid(def.uuid);
      if (other && other.name !== def.name) {
        throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `pool uuid ${def.uuid} already names pool '${other.name}'`);
      }
      for (const p of this.store.list()) {
        if (p.uuid !== def.uuid && parsePoolXml(p.xml).path === def.path) {
          throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `storage pool '${p.name}' already uses "${def.path}"`);
        }
      }
      if (other?.active && parsePoolXml(other.xml).path !== def.path) {
        throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `pool '${def.name}' is active: its directory cannot change`);
      }
      this.store.put(def.uuid, def.name, formatPoolXml(def));
      return def;
    });
  }

  /** `pool-undefine`: the definition goes (an active pool too, as libvirt lets it); the files stay. */
  undefine(name: string): PoolDef {
    const p = this.find(name);
    this.store.delete(p.uuid);
    return parsePoolXml(p.xml);
  }

  /** `pool-build`: the directory, with the pool's permissions (default 0711, root). */
  build(name: string): void {
    const { def } = this.get(name);
    try {
      mkdirSync(def.path, { recursive: true, mode: def.mode ?? 0o711 });
    } catch (err) {
      throw new SvirtError(
        'SVIRT_ERR_HOST',
        `cannot build pool '${def.name}': mkdir "${def.path}": ${errnoOf(err) ?? String(err)}`,
      );
    }
    const dir = PoolDir.open(def.path);
    try {
      if (def.owner !== undefined || def.group !== undefined) dir.chown(def.owner ?? -1, def.group ?? -1);
    } finally {
      dir.close();
    }
  }

  /** `pool-start`: the directory must be there (pool-build makes it). */
  start(name: string): PoolInfo {
    const p = this.find(name);
    if (p.active) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `storage pool '${p.name}' is already active`);
    PoolDir.open(parsePoolXml(p.xml).path).close();
    this.store.setActive(p.uuid, true);
    return { ...this.info(p), active: true };
  }

  /** `pool-destroy`: inactive (volumes stay, guests using them keep them). */
  destroy(name: string): void {
    const p = this.find(name);
    if (!p.active) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `storage pool '${p.name}' is not active`);
    this.store.setActive(p.uuid, false);
  }

  /** `pool-delete`: removes the (empty) directory of an inactive pool. */
  delete(name: string): void {
    const p = this.find(name);
    if (p.active) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `storage pool '${p.name}' is still active`);
    const path = parsePoolXml(p.xml).path;
    try {
      rmdirSync(path);
    } catch (err) {
      throw new SvirtError('SVIRT_ERR_HOST', `cannot delete pool '${p.name}': rmdir "${path}": ${errnoOf(err) ?? String(err)}`);
    }
  }

  setAutostart(name: string, on: boolean): void {
    this.store.setAutostart(this.find(name).uuid, on);
  }

  dumpXml(name: string): string {
    const i = this.get(name);
    return formatPoolXml(i.def, i.active ? this.withDir(i, (d) => d.sizes()) : undefined);
  }

  sizes(name: string): { state: number; capacity: number; allocation: number; available: number } {
    const i = this.get(name);
    if (!i.active) return { state: 0, capacity: 0, allocation: 0, available: 0 };
    return { state: 2, ...this.withDir(i, (d) => d.sizes()) };
  }

  /** `pool-refresh`: formats recorded for files that are no longer there (or are other files) are dropped. */
  refresh(name: string): void {
    const i = this.active(name);
    this.withDir(i, (d) => {
      for (const v of d.list()) {
        const rec = this.store.volume(i.def.uuid, v.name);
        if (rec && (rec.dev !== v.dev || rec.ino !== v.ino)) this.store.deleteVolume(i.def.uuid, v.name);
      }
    });
  }

  private active(name: string): PoolInfo {
    const i = this.get(name);
    if (!i.active) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `storage pool '${i.def.name}' is not active`);
    return i;
  }

  private withDir<T>(i: PoolInfo, fn: (d: PoolDir) => T): T {
    const d = PoolDir.open(i.def.path);
    try {
      return fn(d);
    } finally {
      d.close();
    }
  }

  // ---- volumes -------------------------------------------------------------------------

  /** The declared format: what svirt recorded for this very file, else raw (never read from the content). */
  private formatOf(pool: PoolInfo, st: VolumeStat): VolumeFormat {
    const rec = this.store.volume(pool.def.uuid, st.name);
    return rec && rec.dev === st.dev && rec.ino === st.ino ? rec.format : 'raw';
  }

  private facts(pool: PoolInfo, d: PoolDir, st: VolumeStat): VolumeInfo {
    const format = this.formatOf(pool, st);
    let capacity = st.size;
    if (format === 'qcow2') {
      const fd = d.open(st.name, false, st);
      try {
        capacity = capacityOf(fd, format);
      } finally {
        closeSync(fd);
      }
    }
    const nlink = fstatNlink(d, st);
    return {
      pool: pool.def.name,
      name: st.name,
      path: d.pathOf(st.name),
      format,
      capacity,
      allocation: st.blocks * 512,
      physical: st.size,
      mode: st.mode,
      owner: st.uid,
      group: st.gid,
      dev: st.dev,
      ino: st.ino,
      nlink,
    };
  }

  volumes(pool: string): VolumeInfo[] {
    const i = this.active(pool);
    return this.withDir(i, (d) => d.list().map((st) => this.facts(i, d, st)));
  }

  volume(pool: string, name: string): VolumeInfo {
    const i = this.active(pool);
    return this.withDir(i, (d) => {
      const st = d.stat(name);
      if (!st) throw noVolume(name);
      return this.facts(i, d, st);
    });
  }

  /** A volume by its path (= its key): the active pool whose directory holds it. */
  byPath(path: string): VolumeInfo {
    const dir = dirname(path);
    for (const p of this.store.list()) {
      if (!p.active) continue;
      if (parsePoolXml(p.xml).path === dir) return this.volume(p.name, basename(path));
    }
    throw new SvirtError('SVIRT_ERR_NO_STORAGE_VOL', `Storage volume not found: no storage vol with matching path '${path}'`);
  }

  volumeXml(pool: string, name: string): string {
    return formatVolumeXml(this.volume(pool, name));
  }

  /** The running guests whose resources include this very file (device + inode). */
  usersOf(v: { dev: number; ino: number }): string[] {
    const out: string[] = [];
    for (const rec of this.env.store.listRunning()) {
      if (rec.resources.some((r) => r.ident?.dev === v.dev && r.ident.ino === v.ino)) out.push(rec.name);
    }
    return out;
  }

  /** Refuses to change a volume a running guest uses, or one with another name elsewhere (a hard link). */
  private checkWritable(v: VolumeInfo, what: string): void {
    const users = this.usersOf(v);
    if (users.length > 0) {
      throw new SvirtError(
        'SVIRT_ERR_OPERATION_INVALID',
        `cannot ${what} volume '${v.name}': it is in use by running guest(s) ${users.join(', ')}`,
      );
    }
    this.checkLinks(v, what);
  }

  private checkLinks(v: VolumeInfo, what: string): void {
    if (v.nlink > 1) {
      throw new SvirtError(
        'SVIRT_ERR_PATH_INVALID',
        `cannot ${what} volume '${v.name}': "${v.path}" has ${v.nlink} hard links, so it is also a file outside this pool`,
      );
    }
  }

  /** `vol-create`: a new file, sparse, of the declared format (raw: ftruncate; qcow2: qemu-img on the fd). */
  async create(pool: string, xml: string): Promise<VolumeInfo> {
    const spec = parseVolumeXml(xml);
    const i = this.active(pool);
    return this.make(i, spec, async (fd) => {
      if (spec.format === 'raw') truncateRaw(fd, spec.capacity);
      else await createQcow2(fd, spec.capacity, spec.lazyRefcounts, `create volume '${spec.name}'`);
    });
  }

  /** `vol-clone` / vol-create-from: a new volume with the content of `src` (any pool), at least its size. */
  async clone(pool: string, xml: string, src: { pool: string; name: string }): Promise<VolumeInfo> {
    const spec = parseVolumeXml(xml);
    const from = this.volume(src.pool, src.name);
    this.checkWritable(from, 'clone');
    const i = this.active(pool);
    const srcPool = this.active(src.pool);
    const capacity = Math.max(spec.capacity, from.capacity);
    return this.withDir(srcPool, (sd) => {
      const sfd = sd.open(from.name, false, from);
      return this.make(i, { ...spec, capacity }, async (fd) => {
        if (spec.format === 'raw') truncateRaw(fd, capacity);
        else await createQcow2(fd, capacity, spec.lazyRefcounts, `clone into volume '${spec.name}'`);
        await convertInto({ fd: sfd, format: from.format }, { fd, format: spec.format }, `clone volume '${from.name}'`);
      }).finally(() => closeSync(sfd));
    });
  }

  /** Creates the file, fills it, records its format; a failure removes exactly the file it made. */
  private async make(i: PoolInfo, spec: VolumeSpec, fill: (fd: number) => Promise<void>): Promise<VolumeInfo> {
    const d = PoolDir.open(i.def.path);
    try {
      const fd = d.create(spec.name);
      try {
        await fill(fd);
        fsyncSync(fd);
        const st = fstatSync(fd);
        this.store.putVolume(i.def.uuid, spec.name, { format: spec.format, dev: st.dev, ino: st.ino });
      } catch (err) {
        d.discard(spec.name, fd);
        throw err;
      } finally {
        closeSync(fd);
      }
      const st = d.stat(spec.name);
      if (!st) throw noVolume(spec.name);
      return this.facts(i, d, st);
    } finally {
      d.close();
    }
  }

  /** `vol-delete`: refused while a running guest uses the file. */
  deleteVolume(pool: string, name: string): VolumeInfo {
    const v = this.volume(pool, name);
    this.checkWritable(v, 'delete');
    const i = this.active(pool);
    this.withDir(i, (d) => d.remove(name, v));
    this.store.deleteVolume(i.def.uuid, name);
    return v;
  }

  /** `vol-resize`: capacity in bytes (or a delta); shrinking needs RESIZE_SHRINK; no preallocation. */
  async resize(pool: string, name: string, capacity: number, flags: number): Promise<VolumeInfo> {
    if ((flags & RESIZE_ALLOCATE) !== 0) {
      throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', 'vol-resize --allocate: svirt volumes are sparse (docs/storage.md)');
    }
    const v = this.volume(pool, name);
    this.checkWritable(v, 'resize');
    const target = (flags & RESIZE_DELTA) !== 0 ? v.capacity + capacity : capacity;
    if (!Number.isSafeInteger(target)) throw new SvirtError('SVIRT_ERR_USAGE', `vol-resize: ${target} bytes is out of range`);
    if (target < v.capacity && (flags & RESIZE_SHRINK) === 0) {
      throw new SvirtError(
        'SVIRT_ERR_OPERATION_INVALID',
        `cannot shrink volume '${name}' from ${v.capacity} to ${target} bytes without --shrink`,
      );
    }
    const i = this.active(pool);
    await this.withDir(i, async (d) => {
      const fd = d.open(name, true, v);
      try {
        if (v.format === 'raw') truncateRaw(fd, target);
        else await resizeQcow2(fd, target, target < v.capacity, `resize volume '${name}'`);
      } finally {
        closeSync(fd);
      }
    });
    return this.volume(pool, name);
  }

  /**
   * An fd for vol-upload (write) or vol-download (read) of the volume's bytes as they are on
   * disk (libvirt's meaning). Writing is refused while a guest uses the file; both refuse a file
   * with other names (hard links).
   */
  openData(pool: string, name: string, write: boolean): { fd: number; volume: VolumeInfo } {
    const v = this.volume(pool, name);
    if (write) this.checkWritable(v, 'upload into');
    else this.checkLinks(v, 'download');
    const i = this.active(pool);
    const fd = this.withDir(i, (d) => d.open(name, write, v));
    return { fd, volume: v };
  }
}

function fstatNlink(d: PoolDir, st: VolumeStat): number {
  const fd = d.open(st.name, false, st);
  try {
    return fstatSync(fd).nlink;
  } finally {
    closeSync(fd);
  }
}
