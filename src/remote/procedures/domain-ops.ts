/**
 * The everyday domain operations of issue 14 part 6 over the protocol: managed save,
 * autostart, memory and vCPUs, update-device (a CD-ROM's or floppy's medium), rename,
 * metadata, the guest's clock and keys. Each calls `domainOps(hv)` (src/lifecycle/ops/) or the
 * Hypervisor method the CLI verb calls.
 */
import { parseDiskXml } from '../../domain/index.js';
import { SvirtError } from '../../errors.js';
import { RemoteError, VirErr, VirFrom } from '../errors.js';
import { STRING_MAX, readDomain, readOptString } from '../protocol.js';
import type { XdrReader } from '../xdr.js';
import { procedure, type CallContext, type Procedure } from './types.js';
import { checkFlags, readDomainArgs, readDomainFlagsArgs, resolve } from './util.js';
import { domainOps } from '../../lifecycle/ops/domain-ops.js';

/** VIR_DOMAIN_AFFECT_LIVE / _CONFIG (= VIR_DOMAIN_MEM_*, VIR_DOMAIN_VCPU_*, VIR_DOMAIN_DEVICE_MODIFY_*). */
const LIVE = 1;
const CONFIG = 2;
/** VIR_DOMAIN_MEM_MAXIMUM, VIR_DOMAIN_VCPU_MAXIMUM */
const MAXIMUM = 4;
/** VIR_DOMAIN_VCPU_GUEST (the guest agent's count): svirt does not ask the agent. */
const VCPU_GUEST = 8;
/** VIR_DOMAIN_DEVICE_MODIFY_FORCE: eject even when the guest locked the tray (svirt always forces). */
const DEVICE_FORCE = 4;
/** VIR_DOMAIN_SAVE_BYPASS_CACHE */
const SAVE_BYPASS_CACHE = 1;
/** VIR_DOMAIN_TIME_SYNC */
const TIME_SYNC = 1;
/** REMOTE_DOMAIN_SEND_KEY_MAX */
const SEND_KEY_MAX = 16;

function impact(flags: number): { live?: boolean; config?: boolean } {
  return { ...((flags & LIVE) !== 0 ? { live: true } : {}), ...((flags & CONFIG) !== 0 ? { config: true } : {}) };
}

function name(ctx: CallContext, dom: Parameters<typeof resolve>[1]): string {
  return resolve(ctx.server.hv, dom).uuid;
}

function readMemArgs(r: XdrReader, withFlags: boolean) {
  return { dom: readDomain(r), memory: r.uhyper(), flags: withFlags ? r.uint() : 0 };
}

async function setMem(ctx: CallContext, a: { dom: ReturnType<typeof readDomain>; memory: bigint; flags: number }, api: string) {
  checkFlags(a.flags, LIVE | CONFIG | MAXIMUM, api);
  const kib = Number(a.memory);
  const uuid = name(ctx, a.dom);
  if ((a.flags & MAXIMUM) !== 0) domainOps(ctx.server.hv).setMaxMemory(uuid, kib, impact(a.flags));
  else await domainOps(ctx.server.hv).setMemory(uuid, kib, impact(a.flags));
}

async function setVcpus(ctx: CallContext, a: { dom: ReturnType<typeof readDomain>; n: number; flags: number }, api: string) {
  checkFlags(a.flags, LIVE | CONFIG | MAXIMUM, api);
  await domainOps(ctx.server.hv).setVcpus(name(ctx, a.dom), a.n, {
    ...impact(a.flags),
    ...((a.flags & MAXIMUM) !== 0 ? { maximum: true } : {}),
  });
}

const W = { writes: true, reconcile: true } as const;
const R = { reconcile: true } as const;

export const domainOpsProcedures: readonly Procedure[] = [
  procedure('DomainManagedSave', {
    api: 'virDomainManagedSave',
    ...W,
    decode: readDomainFlagsArgs,
    run: async (ctx, a) => {
      checkFlags(a.flags, SAVE_BYPASS_CACHE, 'virDomainManagedSave');
      await domainOps(ctx.server.hv).managedSave(name(ctx, a.dom));
    },
  }),
  procedure('DomainManagedSaveRemove', {
    api: 'virDomainManagedSaveRemove',
    ...W,
    decode: readDomainFlagsArgs,
    run: (ctx, a) => {
      checkFlags(a.flags, 0, 'virDomainManagedSaveRemove');
      domainOps(ctx.server.hv).removeManagedSave(name(ctx, a.dom));
    },
  }),
  procedure('DomainSetAutostart', {
    api: 'virDomainSetAutostart',
    ...W,
    decode: (r) => ({ dom: readDomain(r), autostart: r.int() }),
    run: (ctx, a) => domainOps(ctx.server.hv).setAutostart(name(ctx, a.dom), a.autostart !== 0),
  }),
  procedure('DomainSetMemory', {
    api: 'virDomainSetMemory',
    ...W,
    decode: (r) => readMemArgs(r, false),
    run: (ctx, a) => setMem(ctx, { ...a, flags: LIVE }, 'virDomainSetMemory'),
  }),
  procedure('DomainSetMaxMemory', {
    api: 'virDomainSetMaxMemory',
    ...W,
    decode: (r) => readMemArgs(r, false),
    run: (ctx, a) => setMem(ctx, { ...a, flags: MAXIMUM }, 'virDomainSetMaxMemory'),
  }),
  procedure('DomainSetMemoryFlags', {
    api: 'virDomainSetMemoryFlags',
    ...W,
    decode: (r) => readMemArgs(r, true),
    run: (ctx, a) => setMem(ctx, a, 'virDomainSetMemoryFlags'),
  }),
  procedure('DomainSetVcpus', {
    api: 'virDomainSetVcpus',
    ...W,
    decode: (r) => ({ dom: readDomain(r), n: r.uint(), flags: LIVE }),
    run: (ctx, a) => setVcpus(ctx, a, 'virDomainSetVcpus'),
  }),
  procedure('DomainSetVcpusFlags', {
    api: 'virDomainSetVcpusFlags',
    ...W,
    decode: (r) => ({ dom: readDomain(r), n: r.uint(), flags: r.uint() }),
    run: (ctx, a) => setVcpus(ctx, a, 'virDomainSetVcpusFlags'),
  }),
  procedure('DomainGetVcpusFlags', {
    api: 'virDomainGetVcpusFlags',
    ...R,
    decode: readDomainFlagsArgs,
    run: (ctx, a, w) => {
      checkFlags(a.flags, LIVE | CONFIG | MAXIMUM | VCPU_GUEST, 'virDomainGetVcpusFlags');
      if ((a.flags & VCPU_GUEST) !== 0) {
        throw new RemoteError(
          VirErr.ARGUMENT_UNSUPPORTED,
          VirFrom.QEMU,
          "svirt does not ask the guest agent for the guest's vCPU count",
        );
      }
      const max = (a.flags & MAXIMUM) !== 0 ? { maximum: true } : {};
      w.int(domainOps(ctx.server.hv).vcpuCount(name(ctx, a.dom), { ...impact(a.flags), ...max }));
    },
  }),
  procedure('DomainGetMaxVcpus', {
    api: 'virDomainGetMaxVcpus',
    ...R,
    decode: readDomainArgs,
    run: (ctx, a, w) => void w.int(domainOps(ctx.server.hv).vcpuCount(name(ctx, a.dom), { maximum: true })),
  }),
  procedure('DomainUpdateDeviceFlags', {
    api: 'virDomainUpdateDeviceFlags',
    ...W,
    decode: (r) => ({ dom: readDomain(r), xml: r.string(STRING_MAX), flags: r.uint() }),
    run: async (ctx, a) => {
      checkFlags(a.flags, LIVE | CONFIG | DEVICE_FORCE, 'virDomainUpdateDeviceFlags');
      const info = resolve(ctx.server.hv, a.dom);
      const disk = parseDiskXml(a.xml);
      if (disk.device !== 'cdrom' && disk.device !== 'floppy') {
        throw new RemoteError(
          VirErr.ARGUMENT_UNSUPPORTED,
          VirFrom.QEMU,
          `svirt updates only the medium of a CD-ROM or floppy drive (${disk.target.dev} is a ${disk.device})`,
        );
      }
      const opts = impact(a.flags);
      const t = opts.live || opts.config ? opts : info.record ? { live: true } : { config: true };
      await ctx.server.hv.changeMedia(info.uuid, disk.target.dev, disk.path, t);
    },
  }),
  procedure('DomainRename', {
    api: 'virDomainRename',
    ...W,
    decode: (r) => ({ dom: readDomain(r), newName: readOptString(r), flags: r.uint() }),
    run: (ctx, a, w) => {
      checkFlags(a.flags, 0, 'virDomainRename');
      if (a.newName === undefined) throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, 'new domain name must not be NULL');
      domainOps(ctx.server.hv).rename(name(ctx, a.dom), a.newName);
      w.int(0);
    },
  }),
  procedure('DomainGetMetadata', {
    api: 'virDomainGetMetadata',
    ...R,
    decode: (r) => ({ dom: readDomain(r), type: r.int(), uri: readOptString(r), flags: r.uint() }),
    run: (ctx, a, w) => {
      checkFlags(a.flags, LIVE | CONFIG, 'virDomainGetMetadata');
      let value: string;
      try {
        value = domainOps(ctx.server.hv).getMetadata(name(ctx, a.dom), a.type, a.uri, impact(a.flags));
      } catch (err) {
        const d = err instanceof SvirtError ? (err.details as { noMetadata?: boolean } | undefined) : undefined;
        if (d?.noMetadata === true) throw new RemoteError(VirErr.NO_DOMAIN_METADATA, VirFrom.DOMAIN, (err as Error).message);
        throw err;
      }
      w.string(value, STRING_MAX);
    },
  }),
  procedure('DomainSetMetadata', {
    api: 'virDomainSetMetadata',
    ...W,
    decode: (r) => ({
      dom: readDomain(r),
      type: r.int(),
      metadata: readOptString(r),
      key: readOptString(r),
      uri: readOptString(r),
      flags: r.uint(),
    }),
    run: (ctx, a) => {
      checkFlags(a.flags, LIVE | CONFIG, 'virDomainSetMetadata');
      domainOps(ctx.server.hv).setMetadata(name(ctx, a.dom), a.type, a.metadata, a.key, a.uri, impact(a.flags));
    },
  }),
  procedure('DomainGetTime', {
    api: 'virDomainGetTime',
    ...R,
    decode: readDomainFlagsArgs,
    run: async (ctx, a, w) => {
      checkFlags(a.flags, 0, 'virDomainGetTime');
      const t = await domainOps(ctx.server.hv).getTime(name(ctx, a.dom));
      w.hyper(t.seconds).uint(t.nseconds);
    },
  }),
  procedure('DomainSetTime', {
    api: 'virDomainSetTime',
    ...W,
    decode: (r) => ({ dom: readDomain(r), seconds: r.hyper(), nseconds: r.uint(), flags: r.uint() }),
    run: async (ctx, a) => {
      checkFlags(a.flags, TIME_SYNC, 'virDomainSetTime');
      await domainOps(ctx.server.hv).setTime(
        name(ctx, a.dom),
        (a.flags & TIME_SYNC) !== 0 ? 'sync' : { seconds: a.seconds, nseconds: a.nseconds },
      );
    },
  }),
  procedure('DomainSendKey', {
    api: 'virDomainSendKey',
    ...W,
    decode: (r) => ({
      dom: readDomain(r),
      codeset: r.uint(),
      holdtime: r.uint(),
      keys: r.array(SEND_KEY_MAX, (x) => x.uint()),
      flags: r.uint(),
    }),
    run: async (ctx, a) => {
      checkFlags(a.flags, 0, 'virDomainSendKey');
      await domainOps(ctx.server.hv).sendKey(name(ctx, a.dom), a.codeset, a.keys, a.holdtime);
    },
  }),
];
