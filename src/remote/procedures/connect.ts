/** Connection-level procedures: auth, open/close, features, host facts, domain lists. */
import { cpus, hostname, totalmem } from 'node:os';
import { RemoteError, VirErr, VirFrom } from '../errors.js';
import { capabilitiesXml, LIBVIRT_VERSION } from '../host-info.js';
import {
  AUTH_NONE,
  AUTH_TYPE_LIST_MAX,
  DOMAIN_LIST_MAX,
  Feature,
  SECURITY_DOI_MAX,
  SECURITY_MODEL_MAX,
  STRING_MAX,
  readOptString,
  writeCharArray,
  writeDomain,
} from '../protocol.js';
import { listFacts, matchesListFilter } from '../../lifecycle/list-filter.js';
import { SnapshotStore } from '../../lifecycle/snapshots/snapshot-store.js';
import { MIGRATION_FEATURES } from './migration.js';
import { procedure, type Procedure } from './types.js';
import { checkFlags, wireBrief } from './util.js';

/** VIR_CONNECT_RO */
const CONNECT_RO = 1;

/** Features the daemon itself answers, before a connection is open. */
const DAEMON_FEATURES: ReadonlySet<number> = new Set([
  Feature.PROGRAM_KEEPALIVE,
  Feature.REMOTE_EVENT_CALLBACK,
  Feature.REMOTE_CLOSE_CALLBACK,
]);

/** Every VIR_CONNECT_LIST_DOMAINS_* flag (src/lifecycle/list-filter.ts has their meaning). */
const LIST_ALL_FLAGS = 0xffff;

export const connectProcedures: readonly Procedure[] = [
  procedure('AuthList', {
    api: 'virConnectOpen',
    beforeOpen: true,
    // UNIX socket, no SASL/polkit: access is the socket's file mode (and the peer creds kept for later).
    run: (_ctx, _a, w) => void w.array([AUTH_NONE], AUTH_TYPE_LIST_MAX, (x, v) => x.int(v)),
  }),
  procedure('ConnectSupportsFeature', {
    api: 'virConnectSupportsFeature',
    beforeOpen: true,
    decode: (r) => r.int(),
    run: (ctx, feature, w) => {
      if (DAEMON_FEATURES.has(feature)) return void w.int(1);
      // Over a local UNIX socket only (a TCP or TLS one cannot carry fds).
      if (feature === Feature.FD_PASSING) return void w.int(ctx.client.canPassFds ? 1 : 0);
      if (!ctx.client.opened) throw new RemoteError(VirErr.INTERNAL_ERROR, VirFrom.RPC, 'connection not open');
      if (MIGRATION_FEATURES.has(feature)) return void w.int(1); // docs/migration.md
      w.int(0); // no typed-string params
    },
  }),
  procedure('ConnectOpen', {
    api: 'virConnectOpen',
    beforeOpen: true,
    decode: (r) => ({ name: readOptString(r), flags: r.uint() }),
    run: (ctx, a) => {
      if (ctx.client.opened) throw new RemoteError(VirErr.INTERNAL_ERROR, VirFrom.RPC, 'connection already open');
      if (a.name !== undefined && a.name !== '' && !/^qemu(\+\w+)?:\/\//.test(a.name)) {
        throw new RemoteError(VirErr.NO_CONNECT, VirFrom.REMOTE, `svirt serves only the QEMU driver, not '${a.name}'`);
      }
      ctx.client.readonly = ctx.client.roSocket || (a.flags & CONNECT_RO) !== 0;
      ctx.client.opened = true;
    },
  }),
  procedure('ConnectClose', {
    api: 'virConnectClose',
    run: (ctx) => {
      ctx.client.opened = false;
      ctx.client.closing = true;
    },
  }),
  procedure('ConnectRegisterCloseCallback', {
    api: 'virConnectRegisterCloseCallback',
    run: (ctx) => void (ctx.client.closeCallback = true),
  }),
  procedure('ConnectUnregisterCloseCallback', {
    api: 'virConnectUnregisterCloseCallback',
    run: (ctx) => void (ctx.client.closeCallback = false),
  }),
  procedure('ConnectGetCapabilities', {
    api: 'virConnectGetCapabilities',
    run: (ctx, _a, w) => void w.string(capabilitiesXml(ctx.server.hv), STRING_MAX),
  }),
  procedure('ConnectGetType', { api: 'virConnectGetType', run: (_c, _a, w) => void w.string('QEMU', STRING_MAX) }),
  procedure('ConnectGetVersion', {
    api: 'virConnectGetVersion',
    run: async (ctx, _a, w) => void w.uhyper(await ctx.server.qemuVersion()),
  }),
  procedure('ConnectGetLibVersion', { api: 'virConnectGetLibVersion', run: (_c, _a, w) => void w.uhyper(LIBVIRT_VERSION) }),
  procedure('ConnectGetHostname', { api: 'virConnectGetHostname', run: (_c, _a, w) => void w.string(hostname(), STRING_MAX) }),
  procedure('ConnectGetURI', { api: 'virConnectGetURI', run: (ctx, _a, w) => void w.string(ctx.server.uri, STRING_MAX) }),
  // A local UNIX socket: nothing travels over a network.
  procedure('ConnectIsSecure', { api: 'virConnectIsSecure', run: (_c, _a, w) => void w.int(1) }),
  procedure('NodeGetInfo', {
    api: 'virNodeGetInfo',
    run: (_c, _a, w) => {
      const model = Buffer.alloc(32);
      model.write('x86_64'.slice(0, 31));
      for (const b of model) w.int(b); // char model[32]: each char a 4-byte unit
      const list = cpus();
      w.uhyper(BigInt(Math.floor(totalmem() / 1024)))
        .int(list.length)
        .int(list[0]?.speed ?? 0);
      w.int(1).int(1).int(list.length).int(1); // nodes, sockets, cores, threads
    },
  }),
  procedure('NodeGetSecurityModel', {
    api: 'virNodeGetSecurityModel',
    run: (ctx, _a, w) => {
      const primary = ctx.server.hv.manager.primary;
      // libvirtd reports no model ("") for the nop driver; virsh then prints no security lines.
      writeCharArray(w, primary.name === 'none' ? '' : primary.name, SECURITY_MODEL_MAX);
      writeCharArray(w, primary.name === 'none' ? '' : ctx.server.hv.manager.doi(primary), SECURITY_DOI_MAX);
    },
  }),
  procedure('ConnectListAllDomains', {
    api: 'virConnectListAllDomains',
    reconcile: true,
    decode: (r) => ({ needResults: r.int(), flags: r.uint() }),
    run: (ctx, a, w) => {
      checkFlags(a.flags, LIST_ALL_FLAGS, 'virConnectListAllDomains');
      const hv = ctx.server.hv;
      const facts = listFacts(hv, () => new SnapshotStore(hv.store.db));
      const doms = hv
        .listBrief()
        .filter(ctx.client.canSee)
        .filter((d) => matchesListFilter(d, a.flags, facts(d)))
        .map(wireBrief);
      w.array(a.needResults ? doms : [], DOMAIN_LIST_MAX, writeDomain);
      w.uint(doms.length);
    },
  }),
  procedure('ConnectNumOfDomains', {
    api: 'virConnectNumOfDomains',
    reconcile: true,
    run: (ctx, _a, w) => void w.int(ctx.server.hv.listBrief().filter((d) => d.id !== undefined && ctx.client.canSee(d)).length),
  }),
  procedure('ConnectListDomains', {
    api: 'virConnectListDomains',
    reconcile: true,
    decode: (r) => r.int(),
    run: (ctx, max, w) => {
      const ids = ctx.server.hv.listBrief().flatMap((d) => (d.id !== undefined && ctx.client.canSee(d) ? [d.id] : []));
      w.array(ids.slice(0, Math.max(0, Math.min(max, DOMAIN_LIST_MAX))), DOMAIN_LIST_MAX, (x, v) => x.int(v));
    },
  }),
  procedure('ConnectNumOfDefinedDomains', {
    api: 'virConnectNumOfDefinedDomains',
    reconcile: true,
    run: (ctx, _a, w) => void w.int(ctx.server.hv.listBrief().filter((d) => d.id === undefined && ctx.client.canSee(d)).length),
  }),
  procedure('ConnectListDefinedDomains', {
    api: 'virConnectListDefinedDomains',
    reconcile: true,
    decode: (r) => r.int(),
    run: (ctx, max, w) => {
      const names = ctx.server.hv.listBrief().flatMap((d) => (d.id !== undefined || !ctx.client.canSee(d) ? [] : [d.name]));
      w.array(names.slice(0, Math.max(0, Math.min(max, DOMAIN_LIST_MAX))), DOMAIN_LIST_MAX, (x, v) => x.string(v, STRING_MAX));
    },
  }),
];
