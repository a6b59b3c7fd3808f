import type { DomainDef } from '../domain/domain-def.js';
import { parseDomainXml } from '../domain/index.js';
import { assignMacs, macsOf } from '../network/mac.js';
import type { Store } from '../store/store.js';

// Apart from nics.ts (a NIC's start and stop), so that `define` loads only this.

/** Every MAC of the guests the store knows except `uuid`'s own. */
function otherMacs(store: Store, uuid: string): Set<string> {
  const defs: DomainDef[] = [];
  for (const d of store.listDefined()) if (d.uuid !== uuid) defs.push(parseDomainXml(d.xml));
  for (const r of store.listRunning()) if (r.uuid !== uuid) defs.push(parseDomainXml(r.liveXml));
  return macsOf(defs);
}

/** The definition with a MAC on every NIC, unique among svirt's guests (define, create, attach). */
export function withMacs(store: Store, def: DomainDef): DomainDef {
  return def.interfaces.every((n) => n.mac !== undefined) ? def : assignMacs(def, otherMacs(store, def.uuid));
}
