// Long file: the storage pool and volume procedures of remote_protocol.x, one table as libvirt's
/**
 * Storage pools and volumes over the protocol (issue 14): virsh pool-* and vol-*, virt-install
 * --disk size=N and --disk PATH, virt-manager, libvirt-dbus, Ansible's virt_pool. Every call
 * is a method of src/lifecycle/storage.ts, as the CLI's pool and vol verbs are.
 */
import { StoragePools, type VolumeInfo } from '../../lifecycle/storage.js';
import { closeSync } from 'node:fs';
import { STRING_MAX, UUID_LEN, uuidFromBytes } from '../protocol.js';
import {
  POOL_LIST_MAX,
  VOL_LIST_MAX,
  readNamed,
  readVol,
  writeNamed,
  writeVol,
  type WireNamed,
  type WireVol,
} from '../storage-protocol.js';
import { downloadStream, uploadStream } from '../volume-stream.js';
import type { XdrReader, XdrWriter } from '../xdr.js';
import { procedure, type CallContext, type Procedure } from './types.js';
import { checkFlags } from './util.js';

/** REMOTE_PROC_STORAGE_VOL_UPLOAD / DOWNLOAD: their streams' messages carry these. */
const PROC_UPLOAD = 208;
const PROC_DOWNLOAD = 209;
/** VIR_CONNECT_LIST_STORAGE_POOLS_*: state and autostart filters, then one bit per pool type (dir = 64). */
const LIST_INACTIVE = 1;
const LIST_ACTIVE = 2;
const LIST_PERSISTENT = 4;
const LIST_TRANSIENT = 8;
const LIST_AUTOSTART = 16;
const LIST_NO_AUTOSTART = 32;
const LIST_DIR = 64;
const LIST_TYPES = 0x7ffc0; // dir ... iscsi-direct, vstorage, zfs: every type bit libvirt 9.0 has
/** VIR_STORAGE_POOL_CREATE_WITH_BUILD*, VIR_STORAGE_POOL_BUILD_NO_OVERWRITE / OVERWRITE. */
const CREATE_WITH_BUILD = 1;
const BUILD_FLAGS = 1 | 2 | 4;
const RESIZE_FLAGS = 1 | 2 | 4;

/** A read-only client never makes the default pool by asking for it (storage.ts). */
function pools(ctx: CallContext): StoragePools {
  return new StoragePools(ctx.server.hv.env, !ctx.client.readonly);
}

function wirePool(ctx: CallContext, nameOrUuid: string): WireNamed {
  const p = pools(ctx).get(nameOrUuid);
  return { name: p.def.name, uuid: p.def.uuid };
}

function wireVol(v: VolumeInfo): WireVol {
  return { pool: v.pool, name: v.name, key: v.path };
}

/** A pool argument: found by uuid, as libvirtd looks up a remote_nonnull_storage_pool. */
function poolArg(ctx: CallContext, p: WireNamed): string {
  return pools(ctx).get(p.uuid).def.name;
}

const onePool = (r: XdrReader): { pool: WireNamed } => ({ pool: readNamed(r) });
const poolFlags = (r: XdrReader): { pool: WireNamed; flags: number } => ({ pool: readNamed(r), flags: r.uint() });
const volFlags = (r: XdrReader): { vol: WireVol; flags: number } => ({ vol: readVol(r), flags: r.uint() });

function names(w: XdrWriter, all: readonly string[], max: number): void {
  w.uint(Math.min(all.length, max));
  for (const n of all.slice(0, max)) w.string(n, STRING_MAX);
}

function maxNames(r: XdrReader, limit: number): number {
  const n = r.int();
  if (n < 0 || n > limit) throw new RangeError(`maxnames ${n} out of range 0..${limit}`);
  return n;
}

function listPoolNames(ctx: CallContext, active: boolean, max: number, w: XdrWriter): void {
  const all = pools(ctx)
    .list()
    .filter((p) => p.active === active)
    .map((p) => p.def.name);
  names(w, all, max);
}

function volInfo(w: XdrWriter, v: VolumeInfo): void {
  // `char type` travels as an int: VIR_STORAGE_VOL_FILE = 0.
  w.int(0).uhyper(BigInt(v.capacity)).uhyper(BigInt(v.allocation));
}

/** Opens the stream that owns `fd`; if it cannot be opened (too many streams), the fd is closed. */
function openOrClose(fd: number, open: () => void): void {
  try {
    open();
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

export const storageProcedures: readonly Procedure[] = [
  procedure('ConnectNumOfStoragePools', {
    api: 'virConnectNumOfStoragePools',
    run: (ctx, _a, w) =>
      void w.int(
        pools(ctx)
          .list()
          .filter((p) => p.active).length,
      ),
  }),
  procedure('ConnectListStoragePools', {
    api: 'virConnectListStoragePools',
    decode: (r) => maxNames(r, POOL_LIST_MAX),
    run: (ctx, max, w) => listPoolNames(ctx, true, max, w),
  }),
  procedure('ConnectNumOfDefinedStoragePools', {
    api: 'virConnectNumOfDefinedStoragePools',
    run: (ctx, _a, w) =>
      void w.int(
        pools(ctx)
          .list()
          .filter((p) => !p.active).length,
      ),
  }),
  procedure('ConnectListDefinedStoragePools', {
    api: 'virConnectListDefinedStoragePools',
    decode: (r) => maxNames(r, POOL_LIST_MAX),
    run: (ctx, max, w) => listPoolNames(ctx, false, max, w),
  }),
  procedure('ConnectListAllStoragePools', {
    api: 'virConnectListAllStoragePools',
    decode: (r) => ({ need: r.int(), flags: r.uint() }),
    run: (ctx, a, w) => {
      const f = a.flags;
      const found = pools(ctx)
        .list()
        .filter((p) => {
          if ((f & (LIST_ACTIVE | LIST_INACTIVE)) !== 0 && !((f & LIST_ACTIVE && p.active) || (f & LIST_INACTIVE && !p.active)))
            return false;
          if ((f & (LIST_PERSISTENT | LIST_TRANSIENT)) !== 0 && (f & LIST_PERSISTENT) === 0) return false; // all are persistent
          if (
            (f & (LIST_AUTOSTART | LIST_NO_AUTOSTART)) !== 0 &&
            !((f & LIST_AUTOSTART && p.autostart) || (f & LIST_NO_AUTOSTART && !p.autostart))
          )
            return false;
          if ((f & LIST_TYPES) !== 0 && (f & LIST_DIR) === 0) return false; // every svirt pool is a dir pool
          return true;
        })
        .slice(0, POOL_LIST_MAX);
      const out = a.need ? found : [];
      w.uint(out.length);
      for (const p of out) writeNamed(w, { name: p.def.name, uuid: p.def.uuid });
      w.uint(found.length);
    },
  }),
  procedure('StoragePoolLookupByName', {
    api: 'virStoragePoolLookupByName',
    // Writes when the default pool is made on first use: so it reconciles nothing, but is audited.
    decode: (r) => r.string(STRING_MAX),
    run: (ctx, name, w) => writeNamed(w, wirePool(ctx, name)),
  }),
  procedure('StoragePoolLookupByUUID', {
    api: 'virStoragePoolLookupByUUID',
    decode: (r) => uuidFromBytes(r.opaqueFixed(UUID_LEN)),
    run: (ctx, uuid, w) => writeNamed(w, wirePool(ctx, uuid)),
  }),
  procedure('StoragePoolLookupByVolume', {
    api: 'virStoragePoolLookupByVolume',
    decode: (r) => readVol(r),
    run: (ctx, vol, w) => writeNamed(w, wirePool(ctx, vol.pool)),
  }),
  procedure('StoragePoolDefineXML', {
    api: 'virStoragePoolDefineXML',
    writes: true,
    decode: (r) => ({ xml: r.string(STRING_MAX), flags: r.uint() }),
    run: (ctx, a, w) => {
      checkFlags(a.flags, 0, 'virStoragePoolDefineXML');
      const def = pools(ctx).define(a.xml);
      writeNamed(w, { name: def.name, uuid: def.uuid });
    },
  }),
  procedure('StoragePoolCreateXML', {
    api: 'virStoragePoolCreateXML',
    writes: true,
    decode: (r) => ({ xml: r.string(STRING_MAX), flags: r.uint() }),
    run: (ctx, a, w) => {
      // svirt has no transient pools: this defines the pool and starts it (pool-create FILE).
      checkFlags(a.flags, CREATE_WITH_BUILD | 2 | 4, 'virStoragePoolCreateXML');
      const sp = pools(ctx);
      const def = sp.define(a.xml);
      if (a.flags & CREATE_WITH_BUILD) sp.build(def.name);
      sp.start(def.name);
      writeNamed(w, { name: def.name, uuid: def.uuid });
    },
  }),
  procedure('StoragePoolCreate', {
    api: 'virStoragePoolCreate',
    writes: true,
    decode: poolFlags,
    run: (ctx, a) => {
      checkFlags(a.flags, CREATE_WITH_BUILD | 2 | 4, 'virStoragePoolCreate');
      const name = poolArg(ctx, a.pool);
      if (a.flags & CREATE_WITH_BUILD) pools(ctx).build(name);
      pools(ctx).start(name);
    },
  }),
  procedure('StoragePoolBuild', {
    api: 'virStoragePoolBuild',
    writes: true,
    decode: poolFlags,
    run: (ctx, a) => {
      checkFlags(a.flags, BUILD_FLAGS, 'virStoragePoolBuild');
      pools(ctx).build(poolArg(ctx, a.pool));
    },
  }),
  procedure('StoragePoolDestroy', {
    api: 'virStoragePoolDestroy',
    writes: true,
    decode: onePool,
    run: (ctx, a) => pools(ctx).destroy(poolArg(ctx, a.pool)),
  }),
  procedure('StoragePoolDelete', {
    api: 'virStoragePoolDelete',
    writes: true,
    decode: poolFlags,
    run: (ctx, a) => {
      checkFlags(a.flags, 0, 'virStoragePoolDelete');
      pools(ctx).delete(poolArg(ctx, a.pool));
    },
  }),
  procedure('StoragePoolUndefine', {
    api: 'virStoragePoolUndefine',
    writes: true,
    decode: onePool,
    run: (ctx, a) => void pools(ctx).undefine(poolArg(ctx, a.pool)),
  }),
  procedure('StoragePoolRefresh', {
    api: 'virStoragePoolRefresh',
    writes: true,
    decode: poolFlags,
    run: (ctx, a) => {
      checkFlags(a.flags, 0, 'virStoragePoolRefresh');
      pools(ctx).refresh(poolArg(ctx, a.pool));
    },
  }),
  procedure('StoragePoolGetInfo', {
    api: 'virStoragePoolGetInfo',
    decode: onePool,
    run: (ctx, a, w) => {
      const s = pools(ctx).sizes(poolArg(ctx, a.pool));
      // `unsigned char state` travels as an int.
      w.uint(s.state).uhyper(BigInt(s.capacity)).uhyper(BigInt(s.allocation)).uhyper(BigInt(s.available));
    },
  }),
  procedure('StoragePoolGetXMLDesc', {
    api: 'virStoragePoolGetXMLDesc',
    decode: poolFlags,
    run: (ctx, a, w) => {
      checkFlags(a.flags, 1, 'virStoragePoolGetXMLDesc'); // VIR_STORAGE_XML_INACTIVE: the same here
      w.string(pools(ctx).dumpXml(poolArg(ctx, a.pool)), STRING_MAX);
    },
  }),
  procedure('StoragePoolGetAutostart', {
    api: 'virStoragePoolGetAutostart',
    decode: onePool,
    run: (ctx, a, w) => void w.int(pools(ctx).get(a.pool.uuid).autostart ? 1 : 0),
  }),
  procedure('StoragePoolSetAutostart', {
    api: 'virStoragePoolSetAutostart',
    writes: true,
    decode: (r) => ({ pool: readNamed(r), autostart: r.int() }),
    run: (ctx, a) => pools(ctx).setAutostart(poolArg(ctx, a.pool), a.autostart !== 0),
  }),
  procedure('StoragePoolIsActive', {
    api: 'virStoragePoolIsActive',
    decode: onePool,
    run: (ctx, a, w) => void w.int(pools(ctx).get(a.pool.uuid).active ? 1 : 0),
  }),
  procedure('StoragePoolIsPersistent', {
    api: 'virStoragePoolIsPersistent',
    decode: onePool,
    run: (ctx, a, w) => void w.int(pools(ctx).get(a.pool.uuid) ? 1 : 0),
  }),
  procedure('StoragePoolNumOfVolumes', {
    api: 'virStoragePoolNumOfVolumes',
    decode: onePool,
    run: (ctx, a, w) => void w.int(pools(ctx).volumes(poolArg(ctx, a.pool)).length),
  }),
  procedure('StoragePoolListVolumes', {
    api: 'virStoragePoolListVolumes',
    decode: (r) => ({ pool: readNamed(r), max: maxNames(r, VOL_LIST_MAX) }),
    run: (ctx, a, w) =>
      names(
        w,
        pools(ctx)
          .volumes(poolArg(ctx, a.pool))
          .map((v) => v.name),
        a.max,
      ),
  }),
  procedure('StoragePoolListAllVolumes', {
    api: 'virStoragePoolListAllVolumes',
    decode: (r) => ({ pool: readNamed(r), need: r.int(), flags: r.uint() }),
    run: (ctx, a, w) => {
      checkFlags(a.flags, 0, 'virStoragePoolListAllVolumes');
      const all = pools(ctx).volumes(poolArg(ctx, a.pool)).slice(0, VOL_LIST_MAX);
      const out = a.need ? all : [];
      w.uint(out.length);
      for (const v of out) writeVol(w, wireVol(v));
      w.uint(all.length);
    },
  }),
  procedure('StorageVolLookupByName', {
    api: 'virStorageVolLookupByName',
    decode: (r) => ({ pool: readNamed(r), name: r.string(STRING_MAX) }),
    run: (ctx, a, w) => writeVol(w, wireVol(pools(ctx).volume(poolArg(ctx, a.pool), a.name))),
  }),
  procedure('StorageVolLookupByKey', {
    api: 'virStorageVolLookupByKey',
    decode: (r) => r.string(STRING_MAX),
    run: (ctx, key, w) => writeVol(w, wireVol(pools(ctx).byPath(key))),
  }),
  procedure('StorageVolLookupByPath', {
    api: 'virStorageVolLookupByPath',
    decode: (r) => r.string(STRING_MAX),
    run: (ctx, path, w) => writeVol(w, wireVol(pools(ctx).byPath(path))),
  }),
  procedure('StorageVolCreateXML', {
    api: 'virStorageVolCreateXML',
    writes: true,
    reconcile: true,
    decode: (r) => ({ pool: readNamed(r), xml: r.string(STRING_MAX), flags: r.uint() }),
    run: async (ctx, a, w) => {
      // VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA (1) is accepted: qcow2 metadata is always written.
      checkFlags(a.flags, 1, 'virStorageVolCreateXML');
      writeVol(w, wireVol(await pools(ctx).create(poolArg(ctx, a.pool), a.xml)));
    },
  }),
  procedure('StorageVolCreateXMLFrom', {
    api: 'virStorageVolCreateXMLFrom',
    writes: true,
    reconcile: true,
    decode: (r) => ({ pool: readNamed(r), xml: r.string(STRING_MAX), src: readVol(r), flags: r.uint() }),
    run: async (ctx, a, w) => {
      checkFlags(a.flags, 1, 'virStorageVolCreateXMLFrom');
      const v = await pools(ctx).clone(poolArg(ctx, a.pool), a.xml, { pool: a.src.pool, name: a.src.name });
      writeVol(w, wireVol(v));
    },
  }),
  procedure('StorageVolDelete', {
    api: 'virStorageVolDelete',
    writes: true,
    reconcile: true,
    decode: volFlags,
    run: (ctx, a) => {
      checkFlags(a.flags, 0, 'virStorageVolDelete');
      pools(ctx).deleteVolume(a.vol.pool, a.vol.name);
    },
  }),
  procedure('StorageVolGetInfo', {
    api: 'virStorageVolGetInfo',
    decode: (r) => readVol(r),
    run: (ctx, vol, w) => volInfo(w, pools(ctx).volume(vol.pool, vol.name)),
  }),
  procedure('StorageVolGetInfoFlags', {
    api: 'virStorageVolGetInfoFlags',
    decode: volFlags,
    run: (ctx, a, w) => {
      checkFlags(a.flags, 1, 'virStorageVolGetInfoFlags'); // VIR_STORAGE_VOL_GET_PHYSICAL
      const v = pools(ctx).volume(a.vol.pool, a.vol.name);
      volInfo(w, a.flags & 1 ? { ...v, allocation: v.physical } : v);
    },
  }),
  procedure('StorageVolGetXMLDesc', {
    api: 'virStorageVolGetXMLDesc',
    decode: volFlags,
    run: (ctx, a, w) => {
      checkFlags(a.flags, 0, 'virStorageVolGetXMLDesc');
      w.string(pools(ctx).volumeXml(a.vol.pool, a.vol.name), STRING_MAX);
    },
  }),
  procedure('StorageVolGetPath', {
    api: 'virStorageVolGetPath',
    decode: (r) => readVol(r),
    run: (ctx, vol, w) => void w.string(pools(ctx).volume(vol.pool, vol.name).path, STRING_MAX),
  }),
  procedure('StorageVolResize', {
    api: 'virStorageVolResize',
    writes: true,
    reconcile: true,
    decode: (r) => ({ vol: readVol(r), capacity: r.uhyper(), flags: r.uint() }),
    run: async (ctx, a) => {
      checkFlags(a.flags, RESIZE_FLAGS, 'virStorageVolResize');
      if (a.capacity > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError('capacity out of range');
      await pools(ctx).resize(a.vol.pool, a.vol.name, Number(a.capacity), a.flags);
    },
  }),
  procedure('StorageVolUpload', {
    api: 'virStorageVolUpload',
    writes: true,
    reconcile: true,
    decode: (r) => ({ vol: readVol(r), offset: r.uhyper(), length: r.uhyper(), flags: r.uint() }),
    run: (ctx, a) => {
      checkFlags(a.flags, 0, 'virStorageVolUpload'); // no sparse streams
      const { fd, volume } = pools(ctx).openData(a.vol.pool, a.vol.name, true);
      const offset = Number(a.offset);
      const room = volume.format === 'raw' ? volume.capacity : Math.floor(volume.capacity * 1.1) + 64 * 1024 * 1024;
      const limit = a.length === 0n ? room : Math.min(room, offset + Number(a.length));
      openOrClose(fd, () => ctx.client.openStream(ctx.serial, PROC_UPLOAD, (out) => uploadStream(fd, offset, limit, out)));
    },
  }),
  procedure('StorageVolDownload', {
    api: 'virStorageVolDownload',
    // libvirt refuses it on a read-only connection too: a volume's bytes are a guest's disk.
    writes: true,
    reconcile: true,
    decode: (r) => ({ vol: readVol(r), offset: r.uhyper(), length: r.uhyper(), flags: r.uint() }),
    run: (ctx, a) => {
      checkFlags(a.flags, 0, 'virStorageVolDownload');
      const { fd } = pools(ctx).openData(a.vol.pool, a.vol.name, false);
      openOrClose(fd, () =>
        ctx.client.openStream(ctx.serial, PROC_DOWNLOAD, (out) => downloadStream(fd, Number(a.offset), Number(a.length), out)),
      );
    },
  }),
];
