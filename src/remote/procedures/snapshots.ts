/**
 * The snapshot procedures (issue 14 part 6) over src/lifecycle/snapshots/: what virsh's
 * snapshot-* commands, python-libvirt and virt-manager's snapshot view call.
 */
import type { SnapshotRecord, Snapshots } from '../../lifecycle/snapshots/snapshots.js';
import { SvirtError } from '../../errors.js';
import { STRING_MAX, readDomain, writeDomain, type WireDomain } from '../protocol.js';
import type { XdrReader, XdrWriter } from '../xdr.js';
import { procedure, type CallContext, type Procedure } from './types.js';
import { checkFlags, readDomainFlagsArgs, resolve, wireDomain } from './util.js';

/** REMOTE_DOMAIN_SNAPSHOT_LIST_MAX */
const SNAPSHOT_LIST_MAX = 16384;

/** VIR_DOMAIN_SNAPSHOT_CREATE_* svirt honours (it is always atomic; LIVE is its way for a running guest). */
const CREATE_DISK_ONLY = 16;
const CREATE_ATOMIC = 128;
const CREATE_LIVE = 256;
/** VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY */
const DELETE_METADATA_ONLY = 2;
/** VIR_DOMAIN_SNAPSHOT_XML_SECURE: nothing secret in svirt's snapshot XML. */
const XML_SECURE = 1;

/** VIR_DOMAIN_SNAPSHOT_LIST_* */
const L = {
  ROOTS: 1,
  METADATA: 2,
  LEAVES: 4,
  NO_LEAVES: 8,
  NO_METADATA: 16,
  INACTIVE: 32,
  ACTIVE: 64,
  DISK_ONLY: 128,
  INTERNAL: 256,
  EXTERNAL: 512,
  TOPOLOGICAL: 1024,
} as const;
const LIST_ALL = Object.values(L).reduce((a, b) => a | b, 0);

interface SnapRef {
  readonly name: string;
  readonly dom: WireDomain;
}

function readSnap(r: XdrReader): SnapRef {
  return { name: r.string(STRING_MAX), dom: readDomain(r) };
}

function writeSnap(w: XdrWriter, dom: WireDomain, name: string): void {
  w.string(name, STRING_MAX);
  writeDomain(w, dom);
}

/** Snapshot arguments: the domain at the top (the access gate finds it there), then the rest. */
function readSnapFlags(r: XdrReader): { dom: WireDomain; snap: string; flags: number } {
  const s = readSnap(r);
  return { dom: s.dom, snap: s.name, flags: r.uint() };
}

async function snaps(ctx: CallContext): Promise<Snapshots> {
  const { Snapshots } = await import('../../lifecycle/snapshots/snapshots.js');
  return new Snapshots(ctx.server.hv.env);
}

/** libvirt's list filters: within each group of flags any may match; a group left out passes all. */
function filter(all: readonly SnapshotRecord[], list: readonly SnapshotRecord[], flags: number): SnapshotRecord[] {
  if ((flags & L.NO_METADATA) !== 0 && (flags & L.METADATA) === 0) return []; // every svirt snapshot has metadata
  const leaf = (s: SnapshotRecord) => !all.some((c) => c.parent === s.name);
  return list.filter((s) => {
    if (
      (flags & (L.LEAVES | L.NO_LEAVES)) !== 0 &&
      !(((flags & L.LEAVES) !== 0 && leaf(s)) || ((flags & L.NO_LEAVES) !== 0 && !leaf(s)))
    )
      return false;
    const states = flags & (L.INACTIVE | L.ACTIVE | L.DISK_ONLY);
    if (states !== 0) {
      const ok =
        ((flags & L.INACTIVE) !== 0 && s.state === 'shutoff') ||
        ((flags & L.ACTIVE) !== 0 && (s.state === 'running' || s.state === 'paused')) ||
        ((flags & L.DISK_ONLY) !== 0 && s.state === 'disk-snapshot');
      if (!ok) return false;
    }
    if ((flags & (L.INTERNAL | L.EXTERNAL)) !== 0) {
      if (!(((flags & L.INTERNAL) !== 0 && s.kind === 'internal') || ((flags & L.EXTERNAL) !== 0 && s.kind === 'external')))
        return false;
    }
    return true;
  });
}

/** The snapshots of a domain a listing call asks for (roots only, or all). */
async function listed(
  ctx: CallContext,
  dom: WireDomain,
  flags: number,
  api: string,
): Promise<{ uuid: string; list: SnapshotRecord[]; wire: WireDomain }> {
  checkFlags(flags, LIST_ALL, api);
  const g = resolve(ctx.server.hv, dom);
  const all = (await snaps(ctx)).list(g.uuid);
  const base = (flags & L.ROOTS) !== 0 ? all.filter((s) => s.parent === undefined) : all;
  return { uuid: g.uuid, list: filter(all, base, flags & ~L.ROOTS), wire: wireDomain(g) };
}

/** The children (DESCENDANTS = 1: all below) of one snapshot a call asks for. */
async function childrenOf(ctx: CallContext, dom: WireDomain, snap: string, flags: number, api: string) {
  checkFlags(flags, LIST_ALL, api);
  const g = resolve(ctx.server.hv, dom);
  const s = await snaps(ctx);
  s.get(g.uuid, snap);
  const all = s.list(g.uuid);
  const below = (n: string): SnapshotRecord[] =>
    all.filter((c) => c.parent === n).flatMap((c) => ((flags & 1) !== 0 ? [c, ...below(c.name)] : [c]));
  return { list: filter(all, below(snap), flags & ~1), wire: wireDomain(g) };
}

/** The names of a ListNames call: at most `max` of them (libvirt's maxnames). */
function writeNames(w: XdrWriter, list: readonly SnapshotRecord[], max: number): void {
  w.array(
    list.slice(0, Math.max(0, max)).map((s) => s.name),
    SNAPSHOT_LIST_MAX,
    (x, v) => x.string(v, STRING_MAX),
  );
}

/** The answer of a ListAll call: the snapshots only when asked for (need_results), then their count. */
function writeAll(w: XdrWriter, dom: WireDomain, list: readonly SnapshotRecord[], needResults: number): void {
  if (needResults !== 0) w.array(list, SNAPSHOT_LIST_MAX, (x, s) => writeSnap(x, dom, s.name));
  else w.uint(0);
  w.int(list.length);
}

const W = { writes: true, reconcile: true } as const;
const R = { reconcile: true } as const;

export const snapshotProcedures: readonly Procedure[] = [
  procedure('DomainSnapshotCreateXML', {
    api: 'virDomainSnapshotCreateXML',
    ...W,
    decode: (r) => ({ dom: readDomain(r), xml: r.string(STRING_MAX), flags: r.uint() }),
    run: async (ctx, a, w) => {
      checkFlags(a.flags, CREATE_DISK_ONLY | CREATE_ATOMIC | CREATE_LIVE, 'virDomainSnapshotCreateXML');
      const g = resolve(ctx.server.hv, a.dom);
      const s = await (await snaps(ctx)).create(g.uuid, a.xml, { diskOnly: (a.flags & CREATE_DISK_ONLY) !== 0 });
      writeSnap(w, wireDomain(resolve(ctx.server.hv, a.dom)), s.name);
    },
  }),
  procedure('DomainSnapshotGetXMLDesc', {
    api: 'virDomainSnapshotGetXMLDesc',
    ...R,
    decode: readSnapFlags,
    run: async (ctx, a, w) => {
      checkFlags(a.flags, XML_SECURE, 'virDomainSnapshotGetXMLDesc');
      w.string((await snaps(ctx)).xml(resolve(ctx.server.hv, a.dom).uuid, a.snap), STRING_MAX);
    },
  }),
  procedure('DomainSnapshotNum', {
    api: 'virDomainSnapshotNum',
    ...R,
    decode: readDomainFlagsArgs,
    run: async (ctx, a, w) => void w.int((await listed(ctx, a.dom, a.flags, 'virDomainSnapshotNum')).list.length),
  }),
  procedure('DomainSnapshotListNames', {
    api: 'virDomainSnapshotListNames',
    ...R,
    decode: (r) => ({ dom: readDomain(r), max: r.int(), flags: r.uint() }),
    run: async (ctx, a, w) => {
      const { list } = await listed(ctx, a.dom, a.flags, 'virDomainSnapshotListNames');
      writeNames(w, list, a.max);
    },
  }),
  procedure('DomainListAllSnapshots', {
    api: 'virDomainListAllSnapshots',
    ...R,
    decode: (r) => ({ dom: readDomain(r), needResults: r.int(), flags: r.uint() }),
    run: async (ctx, a, w) => {
      const { list, wire } = await listed(ctx, a.dom, a.flags, 'virDomainListAllSnapshots');
      writeAll(w, wire, list, a.needResults);
    },
  }),
  procedure('DomainSnapshotLookupByName', {
    api: 'virDomainSnapshotLookupByName',
    ...R,
    decode: (r) => ({ dom: readDomain(r), name: r.string(STRING_MAX), flags: r.uint() }),
    run: async (ctx, a, w) => {
      checkFlags(a.flags, 0, 'virDomainSnapshotLookupByName');
      const g = resolve(ctx.server.hv, a.dom);
      writeSnap(w, wireDomain(g), (await snaps(ctx)).get(g.uuid, a.name).name);
    },
  }),
  procedure('DomainHasCurrentSnapshot', {
    api: 'virDomainHasCurrentSnapshot',
    ...R,
    decode: readDomainFlagsArgs,
    run: async (ctx, a, w) => {
      checkFlags(a.flags, 0, 'virDomainHasCurrentSnapshot');
      w.int((await snaps(ctx)).current(resolve(ctx.server.hv, a.dom).uuid) ? 1 : 0);
    },
  }),
  procedure('DomainSnapshotCurrent', {
    api: 'virDomainSnapshotCurrent',
    ...R,
    decode: readDomainFlagsArgs,
    run: async (ctx, a, w) => {
      checkFlags(a.flags, 0, 'virDomainSnapshotCurrent');
      const g = resolve(ctx.server.hv, a.dom);
      const cur = (await snaps(ctx)).current(g.uuid);
      if (!cur) {
        throw new SvirtError('SVIRT_ERR_NO_DOMAIN_SNAPSHOT', `the domain does not have a current snapshot`);
      }
      writeSnap(w, wireDomain(g), cur.name);
    },
  }),
  procedure('DomainRevertToSnapshot', {
    api: 'virDomainRevertToSnapshot',
    ...W,
    decode: readSnapFlags,
    run: async (ctx, a) => {
      checkFlags(a.flags, 0, 'virDomainRevertToSnapshot');
      await (await snaps(ctx)).revert(resolve(ctx.server.hv, a.dom).uuid, a.snap);
    },
  }),
  procedure('DomainSnapshotDelete', {
    api: 'virDomainSnapshotDelete',
    ...W,
    decode: readSnapFlags,
    run: async (ctx, a) => {
      checkFlags(a.flags, DELETE_METADATA_ONLY, 'virDomainSnapshotDelete');
      await (await snaps(ctx)).delete(resolve(ctx.server.hv, a.dom).uuid, a.snap, (a.flags & DELETE_METADATA_ONLY) !== 0);
    },
  }),
  procedure('DomainSnapshotGetParent', {
    api: 'virDomainSnapshotGetParent',
    ...R,
    decode: readSnapFlags,
    run: async (ctx, a, w) => {
      checkFlags(a.flags, 0, 'virDomainSnapshotGetParent');
      const g = resolve(ctx.server.hv, a.dom);
      const s = (await snaps(ctx)).get(g.uuid, a.snap);
      if (s.parent === undefined) {
        throw new SvirtError('SVIRT_ERR_NO_DOMAIN_SNAPSHOT', `snapshot '${a.snap}' does not have a parent`);
      }
      writeSnap(w, wireDomain(g), s.parent);
    },
  }),
  procedure('DomainSnapshotNumChildren', {
    api: 'virDomainSnapshotNumChildren',
    ...R,
    decode: readSnapFlags,
    run: async (ctx, a, w) =>
      void w.int((await childrenOf(ctx, a.dom, a.snap, a.flags, 'virDomainSnapshotNumChildren')).list.length),
  }),
  procedure('DomainSnapshotListChildrenNames', {
    api: 'virDomainSnapshotListChildrenNames',
    ...R,
    decode: (r) => {
      const s = readSnap(r);
      return { dom: s.dom, snap: s.name, max: r.int(), flags: r.uint() };
    },
    run: async (ctx, a, w) => {
      const { list } = await childrenOf(ctx, a.dom, a.snap, a.flags, 'virDomainSnapshotListChildrenNames');
      writeNames(w, list, a.max);
    },
  }),
  procedure('DomainSnapshotListAllChildren', {
    api: 'virDomainSnapshotListAllChildren',
    ...R,
    decode: (r) => {
      const s = readSnap(r);
      return { dom: s.dom, snap: s.name, needResults: r.int(), flags: r.uint() };
    },
    run: async (ctx, a, w) => {
      const { list, wire } = await childrenOf(ctx, a.dom, a.snap, a.flags, 'virDomainSnapshotListAllChildren');
      writeAll(w, wire, list, a.needResults);
    },
  }),
  procedure('DomainSnapshotIsCurrent', {
    api: 'virDomainSnapshotIsCurrent',
    ...R,
    decode: readSnapFlags,
    run: async (ctx, a, w) => {
      checkFlags(a.flags, 0, 'virDomainSnapshotIsCurrent');
      const g = resolve(ctx.server.hv, a.dom);
      const s = await snaps(ctx);
      s.get(g.uuid, a.snap);
      w.int(s.current(g.uuid)?.name === a.snap ? 1 : 0);
    },
  }),
  procedure('DomainSnapshotHasMetadata', {
    api: 'virDomainSnapshotHasMetadata',
    ...R,
    decode: readSnapFlags,
    run: async (ctx, a, w) => {
      checkFlags(a.flags, 0, 'virDomainSnapshotHasMetadata');
      (await snaps(ctx)).get(resolve(ctx.server.hv, a.dom).uuid, a.snap);
      w.int(1);
    },
  }),
];
