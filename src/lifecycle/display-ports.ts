/**
 * TCP ports of VNC and SPICE displays: an explicit port is reserved or refused; autoport
 * takes the lowest port from 5900 that no guest holds and nothing on the host listens on.
 * Reservations live in the store beside the guest's labels, so they are released with them
 * (stop, a failed start, reconcile) and two guests never get the same port.
 */
import { createServer } from 'node:net';
import type { GraphicsDef } from '../domain/display-def.js';
import type { DomainDef } from '../domain/domain-def.js';
import { GRAPHICS_PORT_MAX, GRAPHICS_PORT_MIN } from '../domain/parse-display.js';
import { SvirtError } from '../errors.js';
import type { Store } from '../store/store.js';

/** How many ports autoport tries before it gives up (a bounded scan, never the whole range). */
const AUTOPORT_TRIES = 1000;

/** Whether something on the host listens on address:port already (svirt binds and closes at once). */
function portFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: address, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

async function reserve(store: Store, def: DomainDef, g: GraphicsDef, address: string, taken: Set<number>): Promise<number> {
  if (!g.autoport && g.port !== undefined) {
    const port = g.port;
    if (taken.has(port) || !store.tryReservePort(port, def.uuid)) {
      const holder = taken.has(port) ? def.name : (store.portHolder(port) ?? '?');
      throw new SvirtError(
        'SVIRT_ERR_OPERATION_INVALID',
        `${g.type} port ${port} of '${def.name}' is in use by guest ${holder}`,
        {
          details: { port, holder },
        },
      );
    }
    if (!(await portFree(address, port))) {
      throw new SvirtError(
        'SVIRT_ERR_OPERATION_INVALID',
        `${g.type} port ${port} of '${def.name}' is in use on ${address} by a process that is not a guest`,
        { details: { port, address } },
      );
    }
    return port;
  }
  const last = Math.min(GRAPHICS_PORT_MAX, GRAPHICS_PORT_MIN + AUTOPORT_TRIES - 1);
  for (let port = GRAPHICS_PORT_MIN; port <= last; port++) {
    if (taken.has(port) || store.portHolder(port) !== undefined) continue;
    if (!(await portFree(address, port))) continue;
    if (store.tryReservePort(port, def.uuid)) return port;
  }
  throw new SvirtError(
    'SVIRT_ERR_OPERATION_INVALID',
    `no free ${g.type} port for '${def.name}' between ${GRAPHICS_PORT_MIN} and ${last}`,
  );
}

/** The definition with a reserved port on every TCP display (the caller releases on failure). */
export async function reserveDisplayPorts(store: Store, def: DomainDef): Promise<DomainDef> {
  if (!def.graphics?.some((g) => g.listen.type === 'address')) return def;
  const taken = new Set<number>();
  const graphics: GraphicsDef[] = [];
  for (const g of def.graphics) {
    if (g.listen.type !== 'address') {
      graphics.push(g);
      continue;
    }
    const port = await reserve(store, def, g, g.listen.address, taken);
    taken.add(port);
    graphics.push({ ...g, port });
  }
  return { ...def, graphics };
}
