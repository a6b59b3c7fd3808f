/**
 * Domain event registration (issue 14): the callback family virsh and virt-manager use
 * (ConnectDomainEventCallbackRegisterAny), the older per-id one and python-libvirt's
 * domainEventRegister. Events are sent by src/remote/events.ts. Every event id libvirt 9.0
 * knows may be registered (virsh event --all asks for each); only lifecycle events are sent.
 */
import { RemoteError, VirErr, VirFrom } from '../errors.js';
import { EVENT_ID_LAST } from '../events.js';
import { readDomain } from '../protocol.js';
import type { XdrReader } from '../xdr.js';
import { procedure, type CallContext, type Procedure } from './types.js';

function eventId(r: XdrReader): number {
  const id = r.int();
  if (id < 0 || id > EVENT_ID_LAST) throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, `unsupported event ID ${id}`);
  return id;
}

function hub(ctx: CallContext): NonNullable<CallContext['server']['events']> {
  const h = ctx.server.events;
  if (!h) throw new RemoteError(VirErr.NO_SUPPORT, VirFrom.QEMU, 'this server sends no events');
  return h;
}

function noSuchCallback(what: string): RemoteError {
  return new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, `no event callback ${what} registered on this connection`);
}

export const eventProcedures: readonly Procedure[] = [
  procedure('ConnectDomainEventCallbackRegisterAny', {
    api: 'virConnectDomainEventRegisterAny',
    decode: (r) => ({ eventId: eventId(r), dom: r.optional((x) => readDomain(x)) }),
    run: (ctx, a, w) => void w.int(hub(ctx).register(ctx.client.sink, 'callback', a.eventId, a.dom?.uuid)),
  }),
  procedure('ConnectDomainEventCallbackDeregisterAny', {
    api: 'virConnectDomainEventDeregisterAny',
    decode: (r) => r.int(),
    run: (ctx, id) => {
      if (!hub(ctx).deregister(ctx.client.sink, { id })) throw noSuchCallback(`id ${id}`);
    },
  }),
  procedure('ConnectDomainEventRegisterAny', {
    api: 'virConnectDomainEventRegisterAny',
    decode: eventId,
    run: (ctx, id) => void hub(ctx).register(ctx.client.sink, 'any', id),
  }),
  procedure('ConnectDomainEventDeregisterAny', {
    api: 'virConnectDomainEventDeregisterAny',
    decode: eventId,
    run: (ctx, id) => {
      if (!hub(ctx).deregister(ctx.client.sink, { style: 'any', eventId: id })) throw noSuchCallback(`for event ID ${id}`);
    },
  }),
  procedure('ConnectDomainEventRegister', {
    api: 'virConnectDomainEventRegister',
    run: (ctx, _a, w) => {
      hub(ctx).register(ctx.client.sink, 'legacy', 0);
      w.int(1); // cb_registered
    },
  }),
  procedure('ConnectDomainEventDeregister', {
    api: 'virConnectDomainEventDeregister',
    run: (ctx, _a, w) => {
      if (!hub(ctx).deregister(ctx.client.sink, { style: 'legacy', eventId: 0 })) throw noSuchCallback('(legacy)');
      w.int(0); // cb_registered
    },
  }),
];
