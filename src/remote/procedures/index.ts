import { Proc } from '../protocol.js';
import { connectProcedures } from './connect.js';
import { domainControlProcedures } from './domain-control.js';
import { domainQueryProcedures } from './domain-query.js';
import { domainTuneProcedures } from './domain-tune.js';
import { eventProcedures } from './events.js';
import { hostProcedures } from './host.js';
import { migrationProcedures } from './migration.js';
import { statsProcedures } from './stats.js';
import { streamProcedures } from './streams.js';
import { storageProcedures } from './storage.js';
import { networkProcedures } from './network.js';
import { objectEventProcedures } from './object-events.js';
import type { Procedure } from './types.js';
import { domopsProcedures } from './domops-index.js';

export type { CallContext, ClientSession, Procedure, ServerServices } from './types.js';

/** The procedure table of the remote program, by number. */
export function procedureTable(): ReadonlyMap<number, Procedure> {
  const table = new Map<number, Procedure>();
  for (const p of [
    ...connectProcedures,
    ...domainQueryProcedures,
    ...domainControlProcedures,
    ...eventProcedures,
    ...hostProcedures,
    ...streamProcedures,
    ...statsProcedures,
    ...domainTuneProcedures,
    ...domopsProcedures,
    ...storageProcedures,
    ...networkProcedures,
    ...objectEventProcedures,
    ...migrationProcedures,
  ]) {
    const num = Proc[p.name];
    if (table.has(num)) throw new Error(`procedure ${p.name} (${num}) is registered twice`);
    table.set(num, p);
  }
  return table;
}

/** Procedure names by number, for logs (includes the ones svirt does not implement only as numbers). */
export function procName(num: number): string {
  for (const [name, n] of Object.entries(Proc)) if (n === num) return name;
  return `procedure ${num}`;
}
