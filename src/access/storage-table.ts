/**
 * The permissions of the storage pool, storage volume and network procedures and of the
 * pool-* and vol-* verbs (libvirt's `@acl` annotations in svirt's words). Spread into
 * remote-table.ts and cli-table.ts; no imports but types.
 */
import type { Permission } from './permissions.js';
import type { STORAGE_PROCS } from '../remote/storage-protocol.js';

interface Access {
  readonly perms: readonly Permission[] | 'none';
  readonly audit?: boolean;
}

const p = (perm: Permission, audit = false): Access => (audit ? { perms: [perm], audit } : { perms: [perm] });
const SEARCH_POOLS = p('connect:search-storage-pools');
const SEARCH_NETS = p('connect:search-networks');

export const STORAGE_REMOTE_ACCESS: Readonly<Record<keyof typeof STORAGE_PROCS, Access>> = {
  ConnectNumOfStoragePools: SEARCH_POOLS,
  ConnectListStoragePools: SEARCH_POOLS,
  ConnectNumOfDefinedStoragePools: SEARCH_POOLS,
  ConnectListDefinedStoragePools: SEARCH_POOLS,
  ConnectListAllStoragePools: SEARCH_POOLS,
  // Looking up `default` makes it the first time: storage-pool:getattr, as libvirt's lookup.
  StoragePoolLookupByName: p('storage-pool:getattr'),
  StoragePoolLookupByUUID: p('storage-pool:getattr'),
  StoragePoolLookupByVolume: p('storage-pool:getattr'),
  StoragePoolCreateXML: { perms: ['storage-pool:write', 'storage-pool:start'], audit: true },
  StoragePoolDefineXML: p('storage-pool:write', true),
  StoragePoolCreate: p('storage-pool:start', true),
  StoragePoolBuild: p('storage-pool:format', true),
  StoragePoolDestroy: p('storage-pool:stop', true),
  StoragePoolDelete: p('storage-pool:format', true),
  StoragePoolUndefine: p('storage-pool:delete', true),
  StoragePoolRefresh: p('storage-pool:refresh'),
  StoragePoolGetInfo: p('storage-pool:read'),
  StoragePoolGetXMLDesc: p('storage-pool:read'),
  StoragePoolGetAutostart: p('storage-pool:read'),
  StoragePoolSetAutostart: p('storage-pool:write', true),
  StoragePoolIsActive: p('storage-pool:read'),
  StoragePoolIsPersistent: p('storage-pool:read'),
  StoragePoolNumOfVolumes: p('storage-pool:search-storage-vols'),
  StoragePoolListVolumes: p('storage-pool:search-storage-vols'),
  StoragePoolListAllVolumes: p('storage-pool:search-storage-vols'),
  StorageVolLookupByName: p('storage-vol:getattr'),
  StorageVolLookupByKey: p('storage-vol:getattr'),
  StorageVolLookupByPath: p('storage-vol:getattr'),
  StorageVolCreateXML: p('storage-vol:create', true),
  StorageVolCreateXMLFrom: { perms: ['storage-vol:create', 'storage-vol:data-read'], audit: true },
  StorageVolDelete: p('storage-vol:delete', true),
  StorageVolGetInfo: p('storage-vol:read'),
  StorageVolGetInfoFlags: p('storage-vol:read'),
  StorageVolGetXMLDesc: p('storage-vol:read'),
  StorageVolGetPath: p('storage-vol:read'),
  StorageVolResize: p('storage-vol:resize', true),
  StorageVolUpload: p('storage-vol:data-write', true),
  StorageVolDownload: p('storage-vol:data-read', true),
  // Events: registering is searching; nothing but names and states is sent.
  ConnectStoragePoolEventRegisterAny: SEARCH_POOLS,
  ConnectStoragePoolEventDeregisterAny: { perms: 'none' },
  ConnectNetworkEventRegisterAny: SEARCH_NETS,
  ConnectNetworkEventDeregisterAny: { perms: 'none' },
  ConnectNumOfNetworks: SEARCH_NETS,
  ConnectListNetworks: SEARCH_NETS,
  ConnectNumOfDefinedNetworks: SEARCH_NETS,
  ConnectListDefinedNetworks: SEARCH_NETS,
  ConnectListAllNetworks: SEARCH_NETS,
  NetworkLookupByName: p('network:getattr'),
  NetworkLookupByUUID: p('network:getattr'),
  NetworkDefineXML: p('network:write', true),
  NetworkCreateXML: { perms: ['network:write', 'network:start'], audit: true },
  NetworkCreate: p('network:start', true),
  NetworkDestroy: p('network:stop', true),
  NetworkUndefine: p('network:write', true),
  NetworkGetXMLDesc: p('network:read'),
  NetworkGetAutostart: p('network:read'),
  NetworkSetAutostart: p('network:write', true),
  NetworkGetBridgeName: p('network:read'),
  NetworkIsActive: p('network:read'),
  NetworkIsPersistent: p('network:read'),
  NetworkGetDHCPLeases: p('network:read'),
};

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
