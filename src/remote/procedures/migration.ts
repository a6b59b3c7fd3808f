/**
 * libvirt's migration procedures, version 3 with params (docs/migration.md): Begin, Perform
 * and Confirm on the source's serve, Prepare and Finish on the destination's. `virsh migrate`
 * drives them from the client; `virsh migrate --p2p` and `svirt migrate` send one Perform
 * with the destination's URI and this serve drives the destination itself (migrate-peer.ts).
 */
import { formatDomainXml } from '../../domain/index.js';
import type { Prepared } from '../../lifecycle/migrate/destination.js';
import { COOKIE_MAX } from '../../lifecycle/migrate/handover.js';
import { RemoteError, VirErr, VirFrom } from '../errors.js';
import { readDomain, readOptString, writeDomain, type WireDomain } from '../protocol.js';
import { readTypedParams, stringParam, type TypedParams } from '../typed-params.js';
import type { XdrReader } from '../xdr.js';
import { procedure, type CallContext, type Procedure, type ServerServices } from './types.js';
import { checkFlags, resolve, wireDomain } from './util.js';

/** REMOTE_DOMAIN_MIGRATE_PARAM_LIST_MAX */
const PARAM_LIST_MAX = 64;
/** VIR_DRV_FEATURE_MIGRATION_P2P, _V3, _OFFLINE, _PARAMS: asked by libvirt's client before it migrates. */
export const MIGRATION_FEATURES: ReadonlySet<number> = new Set([4, 6, 12, 13]);
/** How long a prepared guest waits for its Finish before it is given up (a client that vanished). */
const FINISH_DEADLINE_MS = 15 * 60_000;

/**
 * How long a source waits for the Confirm of a Perform that went through (a client that
 * vanished or hangs); then the images decide, as after a crash. SVIRT_TEST_MIGRATE_CONFIRM_MS
 * shortens it for tests.
 */
function confirmDeadlineMs(): number {
  const v = Number(process.env['SVIRT_TEST_MIGRATE_CONFIRM_MS']);
  return Number.isInteger(v) && v > 0 ? v : FINISH_DEADLINE_MS;
}

/**
 * After the Perform's client went: how long the images are left to the destination's Finish,
 * which may still run (it was sent before the client died) and is bounded well below this.
 * Deciding at once could resume the source while that Finish takes the images.
 */
function closeGraceMs(): number {
  return Math.min(confirmDeadlineMs(), 2 * 60_000);
}

interface ConfirmWait {
  timer: NodeJS.Timeout;
}

/** The Confirm each source guest waits for, per server. */
const confirming = new WeakMap<ServerServices, Map<string, ConfirmWait>>();

function confirmingOf(s: ServerServices): Map<string, ConfirmWait> {
  let m = confirming.get(s);
  if (!m) confirming.set(s, (m = new Map()));
  return m;
}

/** Guests prepared here and not yet finished, per server (the streams their Finish waits for). */
const prepared = new WeakMap<ServerServices, Map<string, Prepared & { deadline: NodeJS.Timeout }>>();

function preparedOf(s: ServerServices): Map<string, Prepared & { deadline: NodeJS.Timeout }> {
  let m = prepared.get(s);
  if (!m) prepared.set(s, (m = new Map()));
  return m;
}

async function flagsAndModule(flags: number, api: string) {
  const peer = await import('../migrate-peer.js');
  checkFlags(flags, peer.MIGRATE_FLAGS_OK, api);
  return peer;
}

function readParamsCookieFlags(r: XdrReader): { params: TypedParams; cookie: Buffer; flags: number } {
  return { params: readTypedParams(r, PARAM_LIST_MAX), cookie: r.opaqueVar(COOKIE_MAX), flags: r.uint() };
}

function guestByName(ctx: CallContext, params: TypedParams, cookie: Buffer): { name: string; uuid: string } {
  const name = stringParam(params, 'destination_name');
  if (name !== undefined) {
    const g = ctx.server.hv.lookup(name);
    return { name: g.name, uuid: g.uuid };
  }
  const c = JSON.parse(cookie.toString('utf8')) as { uuid?: unknown; name?: unknown };
  if (typeof c.uuid !== 'string') throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, 'Finish names no guest');
  const g = ctx.server.hv.lookup(c.uuid);
  return { name: g.name, uuid: g.uuid };
}

export const migrationProcedures: readonly Procedure[] = [
  procedure('DomainMigrateBegin3Params', {
    api: 'virDomainMigrateBegin3Params',
    writes: true,
    reconcile: true,
    decode: (r) => ({ dom: readDomain(r), params: readTypedParams(r, PARAM_LIST_MAX), flags: r.uint() }),
    run: async (ctx, a, w) => {
      await flagsAndModule(a.flags, 'virDomainMigrateBegin3Params');
      const { migrateBegin } = await import('../../lifecycle/migrate/source.js');
      const info = resolve(ctx.server.hv, a.dom);
      const begun = migrateBegin(ctx.server.hv.env, info, { offline: (a.flags & 1024) !== 0, copyStorage: (a.flags & 64) !== 0 });
      // virsh's --xml: the destination starts that definition (Prepare checks it is the same guest).
      const xml = stringParam(a.params, 'destination_xml') ?? begun.xml;
      w.opaqueVar(begun.cookie, COOKIE_MAX).string(xml, 4 * 1024 * 1024);
    },
  }),
  procedure('DomainMigratePrepare3Params', {
    api: 'virDomainMigratePrepare3Params',
    writes: true,
    reconcile: true,
    decode: readParamsCookieFlags,
    run: async (ctx, a, w) => {
      const peer = await flagsAndModule(a.flags, 'virDomainMigratePrepare3Params');
      const xml = stringParam(a.params, 'destination_xml');
      if (xml === undefined) throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, 'migration: no destination_xml parameter');
      const hv = ctx.server.hv;
      if ((a.flags & peer.MigrateFlag.OFFLINE) !== 0) {
        if ((a.flags & peer.MigrateFlag.PERSIST_DEST) === 0) {
          throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, 'offline migration requires --persistent');
        }
        hv.define(stringParam(a.params, 'persistent_xml') ?? xml);
        w.opaqueVar(a.cookie, COOKIE_MAX).optional(undefined, (x, v: string) => x.string(v, 1024));
        return;
      }
      const { migratePrepare, migrateFinish } = await import('../../lifecycle/migrate/destination.js');
      const listen = stringParam(a.params, 'listen_address') ?? hostOf(stringParam(a.params, 'migrate_uri'));
      const paused = (a.flags & peer.MigrateFlag.PAUSED) !== 0;
      const copyStorage = (a.flags & peer.MigrateFlag.NON_SHARED_DISK) !== 0;
      const p = await migratePrepare(hv.env, xml, a.cookie, { ...(listen !== undefined ? { listen } : {}), paused, copyStorage });
      const table = preparedOf(ctx.server);
      // Given up when its client goes without a Finish (as libvirtd's close callbacks do), or after the deadline.
      const giveUp = (): void => {
        if (table.get(p.rec.uuid)?.streaming !== p.streaming) return;
        table.delete(p.rec.uuid);
        clearTimeout(deadline);
        p.listener.close();
        migrateFinish(hv.env, p.rec.uuid, true).catch((e: unknown) => hv.env.warn(`${p.rec.name}: ${(e as Error).message}`));
      };
      const deadline = setTimeout(giveUp, FINISH_DEADLINE_MS);
      deadline.unref();
      table.set(p.rec.uuid, { ...p, deadline });
      ctx.client.onClose(giveUp);
      w.opaqueVar(p.cookie, COOKIE_MAX).optional(p.uri, (x, v) => x.string(v, 1024));
    },
  }),
  procedure('DomainMigratePerform3Params', {
    api: 'virDomainMigratePerform3Params',
    writes: true,
    reconcile: true,
    decode: (r) => ({ dom: readDomain(r), dconnuri: readOptString(r), ...readParamsCookieFlags(r) }),
    run: async (ctx, a, w) => {
      const peer = await flagsAndModule(a.flags, 'virDomainMigratePerform3Params');
      const hv = ctx.server.hv;
      const info = resolve(hv, a.dom);
      if ((a.flags & peer.MigrateFlag.PEER2PEER) !== 0) {
        if (a.dconnuri === undefined)
          throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, 'peer-to-peer migration needs a destination URI');
        const migrateUri = stringParam(a.params, 'migrate_uri');
        const listenAddress = stringParam(a.params, 'listen_address');
        // virsh's --xml: the definition the destination starts (host-specific paths changed).
        const destXml = stringParam(a.params, 'destination_xml');
        await peer.migrateToPeer(hv.env, info, a.dconnuri, {
          flags: a.flags,
          ...(destXml !== undefined ? { destXml } : {}),
          ...(migrateUri !== undefined ? { migrateUri } : {}),
          ...(listenAddress !== undefined ? { listenAddress } : {}),
          defaultSocket: '/run/svirt/libvirt-sock',
        });
        if ((a.flags & peer.MigrateFlag.UNDEFINE_SOURCE) !== 0 && info.stored) hv.undefine(info.uuid);
        w.opaqueVar(Buffer.alloc(0), COOKIE_MAX);
        return;
      }
      const uri = stringParam(a.params, 'migrate_uri');
      if (uri === undefined) throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, 'migration: no migrate_uri parameter');
      const { markFinishing, migratePerform, repairMigrationOut } = await import('../../lifecycle/migrate/source.js');
      // A client that goes while the stream runs cancels it (the guest runs on here).
      const gone = new AbortController();
      ctx.client.onClose(() => gone.abort());
      await migratePerform(hv.env, info, uri, a.cookie, {
        live: (a.flags & peer.MigrateFlag.LIVE) !== 0,
        copyStorage: (a.flags & peer.MigrateFlag.NON_SHARED_DISK) !== 0,
        signal: gone.signal,
      });
      markFinishing(hv.env, info.uuid); // the client sends Finish next
      // A client that goes without its Confirm, or sends none in time: the images decide, as after a crash (source.ts).
      const waiting = confirmingOf(ctx.server);
      const giveUp = (): void => {
        if (waiting.get(info.uuid) !== wait) return; // confirmed meanwhile, or a later migration's
        waiting.delete(info.uuid);
        clearTimeout(wait.timer);
        const rec = hv.store.getRunning(info.uuid);
        if (rec?.pending?.op !== 'migrate-out' || rec.ownerPid !== process.pid) return;
        hv.env.warn(`${rec.name}: no Confirm for its migration: the images decide where it runs`);
        repairMigrationOut(hv.env, rec).catch((e: unknown) => hv.env.warn(`${rec.name}: ${(e as Error).message}`));
      };
      const wait: ConfirmWait = { timer: setTimeout(giveUp, confirmDeadlineMs()) };
      wait.timer.unref();
      clearTimeout(waiting.get(info.uuid)?.timer);
      waiting.set(info.uuid, wait);
      const graceThenGiveUp = (): void => {
        clearTimeout(wait.timer);
        wait.timer = setTimeout(giveUp, closeGraceMs());
        wait.timer.unref();
      };
      if (gone.signal.aborted) graceThenGiveUp();
      else gone.signal.addEventListener('abort', graceThenGiveUp, { once: true });
      w.opaqueVar(a.cookie, COOKIE_MAX);
    },
  }),
  procedure('DomainMigrateFinish3Params', {
    api: 'virDomainMigrateFinish3Params',
    writes: true,
    reconcile: false, // the prepared guest is this server's own operation
    decode: (r) => ({ ...readParamsCookieFlags(r), cancelled: r.int() }),
    run: async (ctx, a, w) => {
      const peer = await flagsAndModule(a.flags, 'virDomainMigrateFinish3Params');
      const hv = ctx.server.hv;
      const g = guestByName(ctx, a.params, a.cookie);
      if ((a.flags & peer.MigrateFlag.OFFLINE) !== 0) {
        writeDomain(w, wireDomain(hv.lookup(g.uuid)));
        w.opaqueVar(a.cookie, COOKIE_MAX);
        return;
      }
      const table = preparedOf(ctx.server);
      const p = table.get(g.uuid);
      table.delete(g.uuid);
      if (p) {
        clearTimeout(p.deadline);
        if (a.cancelled !== 0) p.listener.close();
      }
      const { migrateFinish } = await import('../../lifecycle/migrate/destination.js');
      const persist = (a.flags & peer.MigrateFlag.PERSIST_DEST) !== 0;
      const rec = await migrateFinish(hv.env, g.uuid, a.cancelled !== 0, {
        ...(p ? { streaming: p.streaming } : {}),
        paused: (a.flags & peer.MigrateFlag.PAUSED) !== 0,
        ...(persist ? { persistXml: stringParam(a.params, 'persistent_xml') ?? formatDomainXml(hv.lookup(g.uuid).def) } : {}),
      }).finally(() => p?.listener.close()); // the stream's (accepted already) and the export's relay
      if (!rec) throw new RemoteError(VirErr.OPERATION_FAILED, VirFrom.QEMU, `migration of '${g.name}' was cancelled`);
      const dom: WireDomain = wireDomain(hv.lookup(g.uuid));
      writeDomain(w, dom);
      w.opaqueVar(a.cookie, COOKIE_MAX);
    },
  }),
  procedure('DomainMigrateConfirm3Params', {
    api: 'virDomainMigrateConfirm3Params',
    writes: true,
    reconcile: false,
    decode: (r) => ({ dom: readDomain(r), ...readParamsCookieFlags(r), cancelled: r.int() }),
    run: async (ctx, a) => {
      const peer = await flagsAndModule(a.flags, 'virDomainMigrateConfirm3Params');
      const hv = ctx.server.hv;
      const info = resolve(hv, a.dom);
      const waiting = confirmingOf(ctx.server);
      clearTimeout(waiting.get(info.uuid)?.timer);
      waiting.delete(info.uuid);
      const { migrateConfirm } = await import('../../lifecycle/migrate/source.js');
      const outcome = await migrateConfirm(hv.env, info.uuid, a.cancelled !== 0);
      if (outcome === 'ended' && (a.flags & peer.MigrateFlag.UNDEFINE_SOURCE) !== 0 && info.stored) hv.undefine(info.uuid);
    },
  }),
];

/** The host of `tcp:HOST[:PORT]` / `tcp://HOST[:PORT]`, where the destination listens. */
function hostOf(uri: string | undefined): string | undefined {
  if (uri === undefined) return undefined;
  const m = /^tcp:(?:\/\/)?(\[[0-9a-fA-F:]+\]|[^:/]+)/.exec(uri);
  return m?.[1]?.replace(/^\[|\]$/g, '');
}
