/** Procedures that read a guest: lookups, info, state, XML, security labels. */
import { formatDomainXml } from '../../domain/index.js';
import type { GuestBrief } from '../../lifecycle/guest.js';
import type { DomainInfo, Hypervisor } from '../../lifecycle/hypervisor.js';
import { RemoteError, VirErr, VirFrom } from '../errors.js';
import {
  DOMAIN_MESSAGES_MAX,
  SECURITY_LABEL_LIST_MAX,
  SECURITY_LABEL_MAX,
  STRING_MAX,
  UUID_LEN,
  uuidFromBytes,
  writeCharArray,
  writeDomain,
} from '../protocol.js';
import type { XdrWriter } from '../xdr.js';
import { procedure, type CallContext, type Procedure } from './types.js';
import {
  checkFlags,
  cpuTimeNs,
  readDomainArgs,
  readDomainFlagsArgs,
  resolve,
  stateCode,
  VirDomainState,
  wireBrief,
} from './util.js';
import { domainOps } from '../../lifecycle/ops/domain-ops.js';

/** VIR_DOMAIN_XML_* */
const XML_SECURE = 1;
const XML_INACTIVE = 2;
const XML_UPDATE_CPU = 4;
const XML_MIGRATABLE = 8;

/** virDomainRunningReason / virDomainPausedReason / virDomainShutoffReason values svirt reports. */
const REASON_RUNNING_BOOTED = 1;
const REASON_PAUSED_USER = 1;
const REASON_SHUTOFF_UNKNOWN = 0;

/** Each driver's label of a running guest, primary first; none while it is shut off. */
async function labels(hv: Hypervisor, info: DomainInfo): Promise<{ label: string; enforcing: boolean }[]> {
  const sec = await hv.describe(info);
  return sec.labels.map((l) =>
    info.record?.pid && l.type !== 'none' && l.label !== ''
      ? { label: l.label, enforcing: l.enforcing }
      : { label: '', enforcing: false },
  );
}

function writeLabel(w: XdrWriter, l: { label: string; enforcing: boolean }): void {
  writeCharArray(w, l.label, SECURITY_LABEL_MAX);
  w.int(l.enforcing ? 1 : 0);
}

/** The guest a lookup names, from the store's short rows: a lookup answers a name, a uuid and an id. */
function lookupBy(ctx: CallContext, what: string, find: (d: GuestBrief) => boolean): GuestBrief {
  // A guest the caller may not see (domain:getattr) is not found.
  const found = ctx.server.hv.listBrief().find((d) => find(d) && ctx.client.canSee(d));
  if (!found) throw new RemoteError(VirErr.NO_DOMAIN, VirFrom.QEMU, `no domain with matching ${what}`);
  return found;
}

export const domainQueryProcedures: readonly Procedure[] = [
  procedure('DomainLookupByName', {
    api: 'virDomainLookupByName',
    reconcile: true,
    decode: (r) => r.string(STRING_MAX),
    run: (ctx, name, w) => writeDomain(w, wireBrief(lookupBy(ctx, `name '${name}'`, (d) => d.name === name))),
  }),
  procedure('DomainLookupByUUID', {
    api: 'virDomainLookupByUUID',
    reconcile: true,
    decode: (r) => uuidFromBytes(r.opaqueFixed(UUID_LEN)),
    run: (ctx, uuid, w) => writeDomain(w, wireBrief(lookupBy(ctx, `uuid '${uuid}'`, (d) => d.uuid === uuid))),
  }),
  procedure('DomainLookupByID', {
    api: 'virDomainLookupByID',
    reconcile: true,
    decode: (r) => r.int(),
    run: (ctx, id, w) => writeDomain(w, wireBrief(lookupBy(ctx, `id ${id}`, (d) => d.id === id))),
  }),
  procedure('DomainGetOSType', {
    api: 'virDomainGetOSType',
    reconcile: true,
    decode: readDomainArgs,
    run: (ctx, a, w) => void w.string(resolve(ctx.server.hv, a.dom).def.os.type, STRING_MAX),
  }),
  procedure('DomainGetInfo', {
    api: 'virDomainGetInfo',
    reconcile: true,
    decode: readDomainArgs,
    run: (ctx, a, w) => {
      const info = resolve(ctx.server.hv, a.dom);
      w.uint(stateCode(info.state)); // unsigned char: one 4-byte unit
      w.uhyper(info.def.memoryKiB).uhyper(info.def.currentMemoryKiB); // libvirt reports the balloon target even when shut off
      w.uint(info.def.vcpusCurrent ?? info.def.vcpus); // unsigned short: one 4-byte unit
      w.uhyper(cpuTimeNs(info.record?.pid));
    },
  }),
  procedure('DomainGetMaxMemory', {
    api: 'virDomainGetMaxMemory',
    reconcile: true,
    decode: readDomainArgs,
    run: (ctx, a, w) => void w.uhyper(resolve(ctx.server.hv, a.dom).def.memoryKiB),
  }),
  procedure('DomainGetState', {
    api: 'virDomainGetState',
    reconcile: true,
    decode: readDomainFlagsArgs,
    run: (ctx, a, w) => {
      checkFlags(a.flags, 0, 'virDomainGetState');
      const code = stateCode(resolve(ctx.server.hv, a.dom).state);
      const reason =
        code === VirDomainState.RUNNING
          ? REASON_RUNNING_BOOTED
          : code === VirDomainState.PAUSED
            ? REASON_PAUSED_USER
            : REASON_SHUTOFF_UNKNOWN;
      w.int(code).int(reason);
    },
  }),
  procedure('DomainIsActive', {
    api: 'virDomainIsActive',
    reconcile: true,
    decode: readDomainArgs,
    run: (ctx, a, w) => void w.int(resolve(ctx.server.hv, a.dom).record ? 1 : 0),
  }),
  procedure('DomainIsPersistent', {
    api: 'virDomainIsPersistent',
    reconcile: true,
    decode: readDomainArgs,
    run: (ctx, a, w) => void w.int(resolve(ctx.server.hv, a.dom).persistent ? 1 : 0),
  }),
  procedure('DomainIsUpdated', {
    api: 'virDomainIsUpdated',
    reconcile: true,
    decode: readDomainArgs,
    run: (ctx, a, w) => void (resolve(ctx.server.hv, a.dom), w.int(0)),
  }),
  procedure('DomainGetAutostart', {
    api: 'virDomainGetAutostart',
    reconcile: true,
    decode: readDomainArgs,
    run: (ctx, a, w) => void w.int(ctx.server.hv.autostart(resolve(ctx.server.hv, a.dom)) ? 1 : 0),
  }),
  procedure('DomainHasManagedSaveImage', {
    api: 'virDomainHasManagedSaveImage',
    reconcile: true,
    decode: readDomainFlagsArgs,
    run: (ctx, a, w) => void w.int(ctx.server.hv.hasManagedSave(resolve(ctx.server.hv, a.dom)) ? 1 : 0),
  }),
  procedure('DomainGetMessages', {
    api: 'virDomainGetMessages',
    reconcile: true,
    decode: readDomainFlagsArgs,
    run: (ctx, a, w) =>
      void w.array<string>(domainOps(ctx.server.hv).messages(resolve(ctx.server.hv, a.dom).uuid), DOMAIN_MESSAGES_MAX, (x, v) =>
        x.string(v, STRING_MAX),
      ),
  }),
  procedure('DomainGetJobInfo', {
    api: 'virDomainGetJobInfo',
    reconcile: true,
    decode: readDomainArgs,
    run: (ctx, a, w) => {
      resolve(ctx.server.hv, a.dom);
      w.int(0); // VIR_DOMAIN_JOB_NONE: svirt's jobs (save) complete inside their own call
      for (let i = 0; i < 11; i++) w.uhyper(0);
    },
  }),
  procedure('DomainGetXMLDesc', {
    api: 'virDomainGetXMLDesc',
    reconcile: true,
    decode: readDomainFlagsArgs,
    run: (ctx, a, w) => {
      checkFlags(a.flags, XML_SECURE | XML_INACTIVE | XML_UPDATE_CPU | XML_MIGRATABLE, 'virDomainGetXMLDesc');
      if ((a.flags & XML_SECURE) !== 0 && ctx.client.readonly) {
        throw new RemoteError(VirErr.OPERATION_DENIED, VirFrom.NONE, 'virDomainGetXMLDesc with secure flag');
      }
      const info = resolve(ctx.server.hv, a.dom);
      // --inactive of a transient guest: it has no other definition than the live one.
      const def = (a.flags & XML_INACTIVE) !== 0 && info.persistent ? ctx.server.hv.inactiveDef(info.def.uuid) : info.def;
      w.string(formatDomainXml(def), STRING_MAX);
    },
  }),
  procedure('DomainGetSecurityLabel', {
    api: 'virDomainGetSecurityLabel',
    reconcile: true,
    decode: readDomainArgs,
    run: async (ctx, a, w) => {
      const all = await labels(ctx.server.hv, resolve(ctx.server.hv, a.dom));
      writeLabel(w, all[0] ?? { label: '', enforcing: false });
    },
  }),
  procedure('DomainGetSecurityLabelList', {
    api: 'virDomainGetSecurityLabelList',
    reconcile: true,
    decode: readDomainArgs,
    run: async (ctx, a, w) => {
      const all = await labels(ctx.server.hv, resolve(ctx.server.hv, a.dom));
      w.array(all, SECURITY_LABEL_LIST_MAX, writeLabel);
      w.int(all.length);
    },
  }),
];
