/**
 * Network objects over the protocol (issue 14): virsh net-*, virt-install --network
 * network=NAME, virt-manager, libvirt-dbus, Ansible's virt_net. Every call is a method of
 * src/lifecycle/networks.ts, the same the CLI's net-* verbs call.
 */
import { Networks, type NetworkInfo } from '../../lifecycle/networks.js';
import { STRING_MAX, UUID_LEN, readOptString, uuidFromBytes } from '../protocol.js';
import { DHCP_LEASES_MAX, NETWORK_LIST_MAX, readNamed, writeNamed, type WireNamed } from '../storage-protocol.js';
import type { XdrReader, XdrWriter } from '../xdr.js';
import { procedure, type CallContext, type Procedure } from './types.js';
import { checkFlags } from './util.js';

/** VIR_CONNECT_LIST_NETWORKS_* */
const LIST_INACTIVE = 1;
const LIST_ACTIVE = 2;
const LIST_PERSISTENT = 4;
const LIST_TRANSIENT = 8;
const LIST_AUTOSTART = 16;
const LIST_NO_AUTOSTART = 32;

function nets(ctx: CallContext): Networks {
  return new Networks(ctx.server.hv.env);
}

function wire(n: NetworkInfo): WireNamed {
  return { name: n.def.name, uuid: n.def.uuid };
}

/** A network argument, found by uuid as libvirtd finds a remote_nonnull_network. */
function byArg(ctx: CallContext, n: WireNamed): NetworkInfo {
  return nets(ctx).get(n.uuid);
}

const oneNet = (r: XdrReader): { net: WireNamed } => ({ net: readNamed(r) });

function maxNames(r: XdrReader): number {
  const n = r.int();
  if (n < 0 || n > NETWORK_LIST_MAX) throw new RangeError(`maxnames ${n} out of range`);
  return n;
}

function names(w: XdrWriter, all: readonly string[], max: number): void {
  const out = all.slice(0, max);
  w.uint(out.length);
  for (const n of out) w.string(n, STRING_MAX);
}

function listed(ctx: CallContext, active: boolean): string[] {
  return nets(ctx)
    .list()
    .filter((n) => n.active === active)
    .map((n) => n.def.name);
}

export const networkProcedures: readonly Procedure[] = [
  procedure('ConnectNumOfNetworks', {
    api: 'virConnectNumOfNetworks',
    run: (ctx, _a, w) => void w.int(listed(ctx, true).length),
  }),
  procedure('ConnectListNetworks', {
    api: 'virConnectListNetworks',
    decode: maxNames,
    run: (ctx, max, w) => names(w, listed(ctx, true), max),
  }),
  procedure('ConnectNumOfDefinedNetworks', {
    api: 'virConnectNumOfDefinedNetworks',
    run: (ctx, _a, w) => void w.int(listed(ctx, false).length),
  }),
  procedure('ConnectListDefinedNetworks', {
    api: 'virConnectListDefinedNetworks',
    decode: maxNames,
    run: (ctx, max, w) => names(w, listed(ctx, false), max),
  }),
  procedure('ConnectListAllNetworks', {
    api: 'virConnectListAllNetworks',
    decode: (r) => ({ need: r.int(), flags: r.uint() }),
    run: (ctx, a, w) => {
      const f = a.flags;
      checkFlags(f, 63, 'virConnectListAllNetworks');
      const found = nets(ctx)
        .list()
        .filter((n) => {
          if ((f & (LIST_ACTIVE | LIST_INACTIVE)) !== 0 && !((f & LIST_ACTIVE && n.active) || (f & LIST_INACTIVE && !n.active)))
            return false;
          if ((f & (LIST_PERSISTENT | LIST_TRANSIENT)) !== 0 && (f & LIST_PERSISTENT) === 0) return false;
          if (
            (f & (LIST_AUTOSTART | LIST_NO_AUTOSTART)) !== 0 &&
            !((f & LIST_AUTOSTART && n.autostart) || (f & LIST_NO_AUTOSTART && !n.autostart))
          )
            return false;
          return true;
        })
        .slice(0, NETWORK_LIST_MAX);
      const out = a.need ? found : [];
      w.uint(out.length);
      for (const n of out) writeNamed(w, wire(n));
      w.uint(found.length);
    },
  }),
  procedure('NetworkLookupByName', {
    api: 'virNetworkLookupByName',
    decode: (r) => r.string(STRING_MAX),
    run: (ctx, name, w) => writeNamed(w, wire(nets(ctx).get(name))),
  }),
  procedure('NetworkLookupByUUID', {
    api: 'virNetworkLookupByUUID',
    decode: (r) => uuidFromBytes(r.opaqueFixed(UUID_LEN)),
    run: (ctx, uuid, w) => writeNamed(w, wire(nets(ctx).get(uuid))),
  }),
  procedure('NetworkDefineXML', {
    api: 'virNetworkDefineXML',
    writes: true,
    decode: (r) => r.string(STRING_MAX),
    run: (ctx, xml, w) => {
      const def = nets(ctx).define(xml);
      writeNamed(w, { name: def.name, uuid: def.uuid });
    },
  }),
  procedure('NetworkCreateXML', {
    api: 'virNetworkCreateXML',
    writes: true,
    decode: (r) => r.string(STRING_MAX),
    run: async (ctx, xml, w) => {
      // svirt has no transient networks: net-create defines the network and starts it.
      const def = nets(ctx).define(xml);
      await nets(ctx).start(def.name);
      writeNamed(w, { name: def.name, uuid: def.uuid });
    },
  }),
  procedure('NetworkCreate', {
    api: 'virNetworkCreate',
    writes: true,
    decode: oneNet,
    run: async (ctx, a) => void (await nets(ctx).start(byArg(ctx, a.net).def.name)),
  }),
  procedure('NetworkDestroy', {
    api: 'virNetworkDestroy',
    writes: true,
    reconcile: true,
    decode: oneNet,
    run: (ctx, a) => nets(ctx).destroy(byArg(ctx, a.net).def.name),
  }),
  procedure('NetworkUndefine', {
    api: 'virNetworkUndefine',
    writes: true,
    decode: oneNet,
    run: (ctx, a) => void nets(ctx).undefine(byArg(ctx, a.net).def.name),
  }),
  procedure('NetworkGetXMLDesc', {
    api: 'virNetworkGetXMLDesc',
    decode: (r) => ({ net: readNamed(r), flags: r.uint() }),
    run: (ctx, a, w) => {
      checkFlags(a.flags, 1, 'virNetworkGetXMLDesc'); // VIR_NETWORK_XML_INACTIVE: the same here
      w.string(nets(ctx).dumpXml(byArg(ctx, a.net).def.name), STRING_MAX);
    },
  }),
  procedure('NetworkGetAutostart', {
    api: 'virNetworkGetAutostart',
    decode: oneNet,
    run: (ctx, a, w) => void w.int(byArg(ctx, a.net).autostart ? 1 : 0),
  }),
  procedure('NetworkSetAutostart', {
    api: 'virNetworkSetAutostart',
    writes: true,
    decode: (r) => ({ net: readNamed(r), autostart: r.int() }),
    run: (ctx, a) => nets(ctx).setAutostart(byArg(ctx, a.net).def.name, a.autostart !== 0),
  }),
  procedure('NetworkGetBridgeName', {
    api: 'virNetworkGetBridgeName',
    decode: oneNet,
    run: (ctx, a, w) => {
      const n = byArg(ctx, a.net);
      w.string(n.runtime?.bridge ?? n.def.bridge.name ?? '', STRING_MAX);
    },
  }),
  procedure('NetworkIsActive', {
    api: 'virNetworkIsActive',
    decode: oneNet,
    run: (ctx, a, w) => void w.int(byArg(ctx, a.net).active ? 1 : 0),
  }),
  procedure('NetworkIsPersistent', {
    api: 'virNetworkIsPersistent',
    decode: oneNet,
    run: (ctx, a, w) => void w.int(byArg(ctx, a.net) ? 1 : 0),
  }),
  procedure('NetworkGetDHCPLeases', {
    api: 'virNetworkGetDHCPLeases',
    decode: (r) => ({ net: readNamed(r), mac: readOptString(r), need: r.int(), flags: r.uint() }),
    run: (ctx, a, w) => {
      checkFlags(a.flags, 0, 'virNetworkGetDHCPLeases');
      const n = byArg(ctx, a.net);
      const mac = a.mac?.toLowerCase();
      const all = nets(ctx)
        .leases(n.def.name)
        .filter((l) => mac === undefined || l.mac === mac)
        .slice(0, DHCP_LEASES_MAX);
      const out = a.need ? all : [];
      const bridge = n.runtime?.bridge ?? n.def.bridge.name ?? '';
      w.uint(out.length);
      for (const l of out) {
        w.string(bridge, STRING_MAX).hyper(BigInt(l.expiry)).int(0); // VIR_IP_ADDR_TYPE_IPV4
        w.optional(l.mac, (x, v) => x.string(v, STRING_MAX));
        w.optional(undefined, (x, v: string) => x.string(v, STRING_MAX)); // iaid: IPv6 only
        w.string(l.ip, STRING_MAX).uint(l.prefix);
        w.optional(l.hostname, (x, v) => x.string(v, STRING_MAX));
        w.optional(l.clientId, (x, v) => x.string(v, STRING_MAX));
      }
      w.uint(all.length);
    },
  }),
];
