/**
 * TCP ports of VNC and SPICE displays: an explicit port is reserved or refused; autoport
 * takes the lowest port from 5900 that no guest holds and nothing on the host listens on.
 * Reservations live in the store beside the guest's labels, so they are released with them
 * (stop, a failed start, reconcile) and two guests never get the same port.
 */
import { createServer } from 'node:net';
import { join } from 'node:path';
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

/** What a dry run says of one display: where it would listen, and whether start could have that port. */
export interface DisplayPreview {
  readonly type: GraphicsDef['type'];
  readonly listen: string;
  readonly port?: number;
  readonly note: string;
}

/**
 * The ports start would reserve, found without reserving anything (`svirt profile`): a given
 * port with whether a guest holds it or something on the host listens there; autoport's pick
 * as it stands now (start takes the lowest free port at that moment). `holder` reads the
 * store's reservations (undefined for a port nobody holds). The definition comes back with
 * those ports, so each driver's dry run shows them (Landlock's bind_tcp rules).
 */
export async function previewDisplayPorts(
  def: DomainDef,
  runtimeDir: string,
  holder: (port: number) => string | undefined,
): Promise<{ def: DomainDef; displays: DisplayPreview[] }> {
  const displays: DisplayPreview[] = [];
  const graphics: GraphicsDef[] = [];
  const taken = new Set<number>();
  const mine = (port: number): boolean => holder(port) === def.uuid;
  for (const g of def.graphics ?? []) {
    if (g.listen.type !== 'address') {
      const socket = g.listen.type === 'socket' ? join(runtimeDir, `${g.type}.sock`) : undefined;
      displays.push({
        type: g.type,
        listen: socket === undefined ? 'none' : `unix:${socket}`,
        note: socket === undefined ? 'no listener' : "a socket QEMU creates in the guest's runtime dir; no port",
      });
      graphics.push(g);
      continue;
    }
    const address = g.listen.address;
    let port: number | undefined;
    let note: string;
    if (!g.autoport && g.port !== undefined) {
      port = g.port;
      const other = holder(port);
      if (taken.has(port)) note = 'given twice in this definition: start would fail';
      else if (other !== undefined && other !== def.uuid) note = `held by guest ${other}: start would fail`;
      else if (mine(port)) note = 'held by this guest (running)';
      else if (!(await portFree(address, port))) note = 'something on the host listens there: start would fail';
      else note = 'given; free now, reserved at start';
    } else {
      const last = Math.min(GRAPHICS_PORT_MAX, GRAPHICS_PORT_MIN + AUTOPORT_TRIES - 1);
      for (let p = GRAPHICS_PORT_MIN; p <= last && port === undefined; p++) {
        if (taken.has(p)) continue;
        if (mine(p) || (holder(p) === undefined && (await portFree(address, p)))) port = p;
      }
      note =
        port === undefined
          ? `autoport: no free port between ${GRAPHICS_PORT_MIN} and ${last}: start would fail`
          : mine(port)
            ? 'autoport: held by this guest (running)'
            : `autoport: the lowest free port from ${GRAPHICS_PORT_MIN} now; start reserves the lowest free one then`;
    }
    if (port !== undefined) taken.add(port);
    displays.push({ type: g.type, listen: `${address}:${port ?? '?'}`, ...(port === undefined ? {} : { port }), note });
    graphics.push(port === undefined ? g : { ...g, port });
  }
  return { def: def.graphics ? { ...def, graphics } : def, displays };
}
