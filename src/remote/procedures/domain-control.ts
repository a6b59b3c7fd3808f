/** Procedures that change a guest: define, start, stop, pause, devices, state files. */
import { parseDiskXml } from '../../domain/index.js';
import type { DeviceChangeOptions } from '../../lifecycle/hypervisor.js';
import { RemoteError, VirErr, VirFrom } from '../errors.js';
import { STRING_MAX, readDomain, readOptString, writeDomain, type WireDomain } from '../protocol.js';
import type { XdrReader } from '../xdr.js';
import { procedure, type CallContext, type Procedure } from './types.js';
import { checkFlags, readDomainArgs, readDomainFlagsArgs, resolve, wireDomain } from './util.js';

/** VIR_DOMAIN_START_PAUSED, VIR_DOMAIN_START_FORCE_BOOT (a managed save is discarded) */
const START_PAUSED = 1;
const START_FORCE_BOOT = 8;
/** VIR_DOMAIN_DEFINE_VALIDATE: svirt always validates. */
const DEFINE_VALIDATE = 1;
/** VIR_DOMAIN_DESTROY_GRACEFUL: SIGTERM first, which svirt's destroy always does. */
const DESTROY_GRACEFUL = 1;
/** VIR_DOMAIN_SHUTDOWN_* */
const SHUTDOWN_ACPI = 1;
const SHUTDOWN_SIGNAL = 8;
/** VIR_DOMAIN_UNDEFINE_*: managed save, snapshot/checkpoint metadata, nvram, TPM. */
const UNDEFINE_ALL = 0x7f;
/** VIR_DOMAIN_AFFECT_LIVE / _CONFIG (same values as VIR_DOMAIN_DEVICE_MODIFY_*). */
const AFFECT_LIVE = 1;
const AFFECT_CONFIG = 2;
/** VIR_DOMAIN_SAVE_BYPASS_CACHE (harmless to ignore), _RUNNING, _PAUSED. */
const SAVE_BYPASS_CACHE = 1;
const SAVE_RUNNING = 2;
const SAVE_PAUSED = 4;

async function start(ctx: CallContext, dom: WireDomain, flags: number, api: string) {
  checkFlags(flags, START_PAUSED | START_FORCE_BOOT, api);
  const info = resolve(ctx.server.hv, dom);
  await ctx.server.hv.start(info.def.name, { paused: (flags & START_PAUSED) !== 0, forceBoot: (flags & START_FORCE_BOOT) !== 0 });
  return ctx.server.hv.lookup(info.def.uuid);
}

function deviceOptions(flags: number, api: string): DeviceChangeOptions {
  checkFlags(flags, AFFECT_LIVE | AFFECT_CONFIG, api);
  return {
    ...((flags & AFFECT_LIVE) !== 0 ? { live: true } : {}),
    ...((flags & AFFECT_CONFIG) !== 0 ? { config: true } : {}),
  };
}

function readDeviceArgs(r: XdrReader, withFlags: boolean) {
  return { dom: readDomain(r), xml: r.string(STRING_MAX), flags: withFlags ? r.uint() : AFFECT_LIVE };
}

async function attach(ctx: CallContext, a: ReturnType<typeof readDeviceArgs>, api: string): Promise<void> {
  const opts = deviceOptions(a.flags, api);
  const info = resolve(ctx.server.hv, a.dom);
  await ctx.server.hv.attachDisk(info.def.name, parseDiskXml(a.xml), opts);
}

async function detach(ctx: CallContext, a: ReturnType<typeof readDeviceArgs>, api: string): Promise<void> {
  const opts = deviceOptions(a.flags, api);
  const info = resolve(ctx.server.hv, a.dom);
  // virsh detach-disk sends the whole <disk> element; its target names the device.
  await ctx.server.hv.detachDisk(info.def.name, parseDiskXml(a.xml).target.dev, opts);
}

async function save(
  ctx: CallContext,
  a: { dom: WireDomain; to: string; dxml?: string | undefined; flags: number },
  api: string,
): Promise<void> {
  checkFlags(a.flags, SAVE_BYPASS_CACHE, api);
  if (a.dxml !== undefined)
    throw new RemoteError(VirErr.ARGUMENT_UNSUPPORTED, VirFrom.QEMU, `${api}: a replacement XML (dxml) is not supported`);
  const info = resolve(ctx.server.hv, a.dom);
  await ctx.server.hv.save(info.def.name, a.to);
}

async function restore(
  ctx: CallContext,
  a: { from: string; dxml?: string | undefined; flags: number },
  api: string,
): Promise<void> {
  checkFlags(a.flags, SAVE_BYPASS_CACHE | SAVE_RUNNING | SAVE_PAUSED, api);
  if (a.dxml !== undefined)
    throw new RemoteError(VirErr.ARGUMENT_UNSUPPORTED, VirFrom.QEMU, `${api}: a replacement XML (dxml) is not supported`);
  if ((a.flags & SAVE_RUNNING) !== 0 && (a.flags & SAVE_PAUSED) !== 0) {
    throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, 'running and paused flags are mutually exclusive');
  }
  const rec = await ctx.server.hv.restore(a.from, (a.flags & SAVE_PAUSED) !== 0 ? { paused: true } : {});
  // Without a flag the guest comes back as it was saved; RUNNING overrides a saved pause.
  if ((a.flags & SAVE_RUNNING) !== 0 && ctx.server.hv.lookup(rec.uuid).state === 'paused') await ctx.server.hv.resume(rec.uuid);
}

async function shutdown(ctx: CallContext, a: { dom: WireDomain; flags: number }, api: string): Promise<void> {
  checkFlags(a.flags, SHUTDOWN_ACPI | SHUTDOWN_SIGNAL, api);
  const info = resolve(ctx.server.hv, a.dom);
  // Like virsh against libvirtd: the call returns once the guest was asked; its end is seen by the next call.
  const mode = a.flags === SHUTDOWN_SIGNAL ? 'signal' : 'acpi';
  await ctx.server.hv.shutdown(info.def.name, { mode, timeoutMs: 0 });
}

const W = { writes: true, reconcile: true } as const;

export const domainControlProcedures: readonly Procedure[] = [
  procedure('DomainDefineXML', {
    api: 'virDomainDefineXML',
    ...W,
    decode: (r) => r.string(STRING_MAX),
    run: (ctx, xml, w) => writeDomain(w, wireDomain(ctx.server.hv.lookup(ctx.server.hv.define(xml).uuid))),
  }),
  procedure('DomainDefineXMLFlags', {
    api: 'virDomainDefineXMLFlags',
    ...W,
    decode: (r) => ({ xml: r.string(STRING_MAX), flags: r.uint() }),
    run: (ctx, a, w) => {
      checkFlags(a.flags, DEFINE_VALIDATE, 'virDomainDefineXMLFlags');
      writeDomain(w, wireDomain(ctx.server.hv.lookup(ctx.server.hv.define(a.xml).uuid)));
    },
  }),
  procedure('DomainUndefine', {
    api: 'virDomainUndefine',
    ...W,
    decode: readDomainArgs,
    run: (ctx, a) => void ctx.server.hv.undefine(resolve(ctx.server.hv, a.dom).def.name),
  }),
  procedure('DomainUndefineFlags', {
    api: 'virDomainUndefineFlags',
    ...W,
    decode: readDomainFlagsArgs,
    run: (ctx, a) => {
      checkFlags(a.flags, UNDEFINE_ALL, 'virDomainUndefineFlags');
      // VIR_DOMAIN_UNDEFINE_NVRAM (4) removes the nvram, _KEEP_NVRAM (8) keeps it.
      const nvram = a.flags & 4 ? 'remove' : a.flags & 8 ? 'keep' : undefined;
      // VIR_DOMAIN_UNDEFINE_MANAGED_SAVE (1) removes the managed save image, which otherwise refuses the undefine.
      const managedSave = (a.flags & 1) !== 0;
      // VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA (2) removes the snapshot metadata, which otherwise refuses the undefine.
      const snapshotsMetadata = (a.flags & 2) !== 0;
      ctx.server.hv.undefine(
        resolve(ctx.server.hv, a.dom).def.name,
        nvram === undefined ? { managedSave, snapshotsMetadata } : { nvram, managedSave, snapshotsMetadata },
      );
    },
  }),
  procedure('DomainCreate', {
    api: 'virDomainCreate',
    ...W,
    decode: readDomainArgs,
    run: async (ctx, a) => void (await start(ctx, a.dom, 0, 'virDomainCreate')),
  }),
  procedure('DomainCreateWithFlags', {
    api: 'virDomainCreateWithFlags',
    ...W,
    decode: readDomainFlagsArgs,
    run: async (ctx, a, w) => writeDomain(w, wireDomain(await start(ctx, a.dom, a.flags, 'virDomainCreateWithFlags'))),
  }),
  procedure('DomainCreateXML', {
    api: 'virDomainCreateXML',
    ...W,
    decode: (r) => ({ xml: r.string(STRING_MAX), flags: r.uint() }),
    run: async (ctx, a, w) => {
      checkFlags(a.flags, START_PAUSED, 'virDomainCreateXML');
      const rec = await ctx.server.hv.create(a.xml, { paused: (a.flags & START_PAUSED) !== 0 });
      writeDomain(w, wireDomain(ctx.server.hv.lookup(rec.uuid)));
    },
  }),
  procedure('DomainDestroy', {
    api: 'virDomainDestroy',
    ...W,
    decode: readDomainArgs,
    run: async (ctx, a) => ctx.server.hv.destroy(resolve(ctx.server.hv, a.dom).def.name),
  }),
  procedure('DomainDestroyFlags', {
    api: 'virDomainDestroyFlags',
    ...W,
    decode: readDomainFlagsArgs,
    run: async (ctx, a) => {
      checkFlags(a.flags, DESTROY_GRACEFUL, 'virDomainDestroyFlags');
      await ctx.server.hv.destroy(resolve(ctx.server.hv, a.dom).def.name);
    },
  }),
  procedure('DomainShutdown', {
    api: 'virDomainShutdown',
    ...W,
    decode: readDomainArgs,
    run: (ctx, a) => shutdown(ctx, { dom: a.dom, flags: 0 }, 'virDomainShutdown'),
  }),
  procedure('DomainShutdownFlags', {
    api: 'virDomainShutdownFlags',
    ...W,
    decode: readDomainFlagsArgs,
    run: (ctx, a) => shutdown(ctx, a, 'virDomainShutdownFlags'),
  }),
  procedure('DomainSuspend', {
    api: 'virDomainSuspend',
    ...W,
    decode: readDomainArgs,
    run: (ctx, a) => ctx.server.hv.suspend(resolve(ctx.server.hv, a.dom).def.name),
  }),
  procedure('DomainResume', {
    api: 'virDomainResume',
    ...W,
    decode: readDomainArgs,
    run: (ctx, a) => ctx.server.hv.resume(resolve(ctx.server.hv, a.dom).def.name),
  }),
  procedure('DomainAttachDevice', {
    api: 'virDomainAttachDevice',
    ...W,
    decode: (r) => readDeviceArgs(r, false),
    run: (ctx, a) => attach(ctx, a, 'virDomainAttachDevice'),
  }),
  procedure('DomainAttachDeviceFlags', {
    api: 'virDomainAttachDeviceFlags',
    ...W,
    decode: (r) => readDeviceArgs(r, true),
    run: (ctx, a) => attach(ctx, a, 'virDomainAttachDeviceFlags'),
  }),
  procedure('DomainDetachDevice', {
    api: 'virDomainDetachDevice',
    ...W,
    decode: (r) => readDeviceArgs(r, false),
    run: (ctx, a) => detach(ctx, a, 'virDomainDetachDevice'),
  }),
  procedure('DomainDetachDeviceFlags', {
    api: 'virDomainDetachDeviceFlags',
    ...W,
    decode: (r) => readDeviceArgs(r, true),
    run: (ctx, a) => detach(ctx, a, 'virDomainDetachDeviceFlags'),
  }),
  procedure('DomainSave', {
    api: 'virDomainSave',
    ...W,
    decode: (r) => ({ dom: readDomain(r), to: r.string(STRING_MAX), flags: 0 }),
    run: (ctx, a) => save(ctx, a, 'virDomainSave'),
  }),
  procedure('DomainSaveFlags', {
    api: 'virDomainSaveFlags',
    ...W,
    decode: (r) => ({ dom: readDomain(r), to: r.string(STRING_MAX), dxml: readOptString(r), flags: r.uint() }),
    run: (ctx, a) => save(ctx, a, 'virDomainSaveFlags'),
  }),
  procedure('DomainRestore', {
    api: 'virDomainRestore',
    ...W,
    decode: (r) => ({ from: r.string(STRING_MAX), flags: 0 }),
    run: (ctx, a) => restore(ctx, a, 'virDomainRestore'),
  }),
  procedure('DomainRestoreFlags', {
    api: 'virDomainRestoreFlags',
    ...W,
    decode: (r) => ({ from: r.string(STRING_MAX), dxml: readOptString(r), flags: r.uint() }),
    run: (ctx, a) => restore(ctx, a, 'virDomainRestoreFlags'),
  }),
];
