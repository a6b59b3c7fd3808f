/**
 * Permissions of management operations, named after libvirt's ACL permissions
 * (`virAccessPermDomain`, `virAccessPermConnect`, ...), plus svirt's own
 * `domain:static-privileged-label`. No imports: the CLI's fast path loads this file alone.
 */

export const DOMAIN_PERMISSIONS = [
  'domain:getattr',
  'domain:read',
  'domain:read-secure',
  'domain:write',
  'domain:start',
  'domain:stop',
  'domain:save',
  'domain:hibernate',
  'domain:migrate',
  'domain:open-console',
  'domain:open-graphics',
  'domain:snapshot',
  'domain:fs-freeze',
  'domain:delete',
  'domain:suspend',
  'domain:screenshot',
  'domain:reset',
  // svirt's own: a static label that grants more than a dynamic one (uid 0, an unconfined SELinux type).
  'domain:static-privileged-label',
] as const;

export const OTHER_PERMISSIONS = [
  'connect:getattr',
  'connect:read',
  'connect:write',
  'connect:search-domains',
  'connect:search-networks',
  'network:getattr',
  'network:read',
  'network:write',
  'network:start',
  'network:stop',
  'storage-pool:getattr',
  'storage-pool:read',
  'storage-pool:write',
  'connect:search-storage-pools',
  'storage-pool:start',
  'storage-pool:stop',
  'storage-pool:delete',
  'storage-pool:format',
  'storage-pool:refresh',
  'storage-pool:search-storage-vols',
  'storage-vol:getattr',
  'storage-vol:read',
  'storage-vol:create',
  'storage-vol:delete',
  'storage-vol:format',
  'storage-vol:resize',
  'storage-vol:data-read',
  'storage-vol:data-write',
] as const;

export type DomainPermission = (typeof DOMAIN_PERMISSIONS)[number];
export type Permission = DomainPermission | (typeof OTHER_PERMISSIONS)[number];

export const ALL_PERMISSIONS: readonly Permission[] = [...DOMAIN_PERMISSIONS, ...OTHER_PERMISSIONS];

/** Permissions that change nothing: what the read-only socket may be granted. */
export const READ_ONLY_PERMISSIONS: ReadonlySet<Permission> = new Set<Permission>([
  'domain:getattr',
  'domain:read',
  'connect:getattr',
  'connect:read',
  'connect:search-domains',
  'connect:search-networks',
  'network:getattr',
  'network:read',
  'storage-pool:getattr',
  'storage-pool:read',
  'connect:search-storage-pools',
  'storage-pool:search-storage-vols',
  'storage-vol:getattr',
  'storage-vol:read',
]);

export function isPermission(s: string): s is Permission {
  return (ALL_PERMISSIONS as readonly string[]).includes(s);
}

/** `domain:*` style wildcards expand to every permission of the object. */
export function expandPermission(s: string): Permission[] | undefined {
  if (s === '*') return [...ALL_PERMISSIONS];
  if (s.endsWith(':*')) {
    const prefix = s.slice(0, -1);
    const found = ALL_PERMISSIONS.filter((p) => p.startsWith(prefix));
    return found.length > 0 ? found : undefined;
  }
  return isPermission(s) ? [s] : undefined;
}
