import type { GuestResource } from '../security/driver.js';

/**
 * The stored form of a resource: its paths, role, per-device labels and the identity it was
 * labelled with. Handles and the disk/chardev objects are runtime only (a restore reaches
 * the file again by path + identity).
 */
export function toStored(list: readonly GuestResource[]): GuestResource[] {
  return list.map((r) => {
    const ident = r.handle?.identity ?? r.ident;
    return {
      path: r.path,
      ...(r.declared ? { declared: r.declared } : {}),
      role: r.role,
      seclabels: r.seclabels,
      ...(ident ? { ident: { dev: ident.dev, ino: ident.ino } } : {}),
    };
  });
}

export function serializeResources(list: readonly GuestResource[]): string {
  return JSON.stringify(toStored(list));
}

export function deserializeResources(text: string): GuestResource[] {
  return JSON.parse(text) as GuestResource[];
}
