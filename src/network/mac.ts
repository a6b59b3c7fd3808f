/**
 * MAC addresses of NICs: libvirt's QEMU prefix 52:54:00 and three random octets, unique
 * among the guests svirt knows, written into the definition when it is defined (as libvirt
 * does), so the guest keeps its address, and its DHCP lease, from one start to the next.
 */
import type { DomainDef } from '../domain/domain-def.js';
import { SvirtError } from '../errors.js';
import { randomBytes } from '../host/random.js';

export const MAC_PREFIX = '52:54:00';

/** A random MAC under libvirt's prefix. */
export function randomMac(random: () => Buffer = () => randomBytes(3)): string {
  const b = random();
  return `${MAC_PREFIX}:${[0, 1, 2].map((i) => (b[i] ?? 0).toString(16).padStart(2, '0')).join(':')}`;
}

/**
 * The definition with a MAC on every NIC: missing ones are generated, none equal to one in
 * `used` (every other guest's) or to another NIC of this guest. A MAC given twice in one
 * guest is an error (two NICs with one address break both).
 */
export function assignMacs(def: DomainDef, used: ReadonlySet<string>, random?: () => Buffer): DomainDef {
  const taken = new Set(used);
  for (const n of def.interfaces) {
    if (n.mac === undefined) continue;
    if (taken.has(n.mac) && !used.has(n.mac)) {
      throw new SvirtError('SVIRT_ERR_XML_INVALID', `domain '${def.name}': MAC address ${n.mac} is given to two interfaces`);
    }
    taken.add(n.mac);
  }
  if (def.interfaces.every((n) => n.mac !== undefined)) return def;
  const interfaces = def.interfaces.map((n) => {
    if (n.mac !== undefined) return n;
    for (let i = 0; i < 1000; i++) {
      const mac = randomMac(random);
      if (taken.has(mac)) continue;
      taken.add(mac);
      return { ...n, mac };
    }
    throw new SvirtError('SVIRT_ERR_INTERNAL', `domain '${def.name}': no free MAC address found in 1000 tries`);
  });
  return { ...def, interfaces };
}

/** Every MAC of these definitions. */
export function macsOf(defs: Iterable<DomainDef>): Set<string> {
  const out = new Set<string>();
  for (const d of defs) for (const n of d.interfaces) if (n.mac !== undefined) out.add(n.mac);
  return out;
}
