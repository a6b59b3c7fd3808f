/**
 * The permissions of the pool-* and vol-* verbs (libvirt's `@acl` annotations in svirt's
 * words), spread into cli-table.ts; the storage and network procedures' are in
 * storage-remote-table.ts, apart, so a CLI verb does not build a table only serve reads.
 * No imports but types.
 */
import type { Permission } from './permissions.js';

export interface Access {
  readonly perms: readonly Permission[] | 'none';
  readonly audit?: boolean;
}

export const p = (perm: Permission, audit = false): Access => (audit ? { perms: [perm], audit } : { perms: [perm] });
export const SEARCH_POOLS = p('connect:search-storage-pools');

/** The pool-* and vol-* verbs (src/cli/storage-verbs.ts). */
export const STORAGE_CLI_ACCESS: Readonly<Record<string, Access>> = {
  'pool-list': SEARCH_POOLS,
  'pool-info': p('storage-pool:read'),
  'pool-dumpxml': p('storage-pool:read'),
  'pool-define': p('storage-pool:write', true),
  'pool-define-as': p('storage-pool:write', true),
  'pool-build': p('storage-pool:format', true),
  'pool-start': p('storage-pool:start', true),
  'pool-destroy': p('storage-pool:stop', true),
  'pool-delete': p('storage-pool:format', true),
  'pool-undefine': p('storage-pool:delete', true),
  'pool-refresh': p('storage-pool:refresh'),
  'pool-autostart': p('storage-pool:write', true),
  'vol-list': p('storage-pool:search-storage-vols'),
  'vol-info': p('storage-vol:read'),
  'vol-dumpxml': p('storage-vol:read'),
  'vol-path': p('storage-vol:read'),
  'vol-create': p('storage-vol:create', true),
  'vol-create-as': p('storage-vol:create', true),
  'vol-clone': { perms: ['storage-vol:create', 'storage-vol:data-read'], audit: true },
  'vol-delete': p('storage-vol:delete', true),
  'vol-resize': p('storage-vol:resize', true),
  'vol-upload': p('storage-vol:data-write', true),
  'vol-download': p('storage-vol:data-read', true),
};
