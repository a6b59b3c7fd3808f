/**
 * Network and storage pool event registration (ConnectNetworkEventRegisterAny,
 * ConnectStoragePoolEventRegisterAny and their deregistrations): `virsh net-event`,
 * `pool-event`, virt-manager. Lifecycle events are sent by src/remote/object-events.ts.
 */
import { RemoteError, VirErr, VirFrom } from '../errors.js';
import { OBJ_EVENT_ID_LAST, type ObjectEventHub, type ObjectKind } from '../object-events.js';
import { readNamed } from '../storage-protocol.js';
import type { XdrReader } from '../xdr.js';
import { procedure, type CallContext, type Procedure } from './types.js';

function hub(ctx: CallContext): ObjectEventHub {
  const h = ctx.server.events?.objects;
  if (!h) throw new RemoteError(VirErr.NO_SUPPORT, VirFrom.QEMU, 'this server sends no events');
  return h;
}

function registration(kind: ObjectKind) {
  return (r: XdrReader): { eventId: number; uuid?: string } => {
    const eventId = r.int();
    if (eventId < 0 || eventId > OBJ_EVENT_ID_LAST[kind]) {
      throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, `unsupported ${kind} event ID ${eventId}`);
    }
    const obj = r.optional((x) => readNamed(x));
    return obj ? { eventId, uuid: obj.uuid } : { eventId };
  };
}

function deregister(ctx: CallContext, kind: ObjectKind, id: number): void {
  if (!hub(ctx).deregister(ctx.client.sink, kind, id)) {
    throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, `no ${kind} event callback id ${id} registered on this connection`);
  }
}

export const objectEventProcedures: readonly Procedure[] = [
  procedure('ConnectNetworkEventRegisterAny', {
    api: 'virConnectNetworkEventRegisterAny',
    decode: registration('network'),
    run: (ctx, a, w) => void w.int(hub(ctx).register(ctx.client.sink, 'network', a.eventId, a.uuid)),
  }),
  procedure('ConnectNetworkEventDeregisterAny', {
    api: 'virConnectNetworkEventDeregisterAny',
    decode: (r) => r.int(),
    run: (ctx, id) => deregister(ctx, 'network', id),
  }),
  procedure('ConnectStoragePoolEventRegisterAny', {
    api: 'virConnectStoragePoolEventRegisterAny',
    decode: registration('pool'),
    run: (ctx, a, w) => void w.int(hub(ctx).register(ctx.client.sink, 'pool', a.eventId, a.uuid)),
  }),
  procedure('ConnectStoragePoolEventDeregisterAny', {
    api: 'virConnectStoragePoolEventDeregisterAny',
    decode: (r) => r.int(),
    run: (ctx, id) => deregister(ctx, 'pool', id),
  }),
];
