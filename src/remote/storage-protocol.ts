/**
 * The storage pool, storage volume and network procedures of remote_protocol.x that svirt
 * answers (numbers are the published protocol's), and their shared structs:
 * remote_nonnull_network, remote_nonnull_storage_pool, remote_nonnull_storage_vol.
 */
import type { XdrReader, XdrWriter } from './xdr.js';

export const STORAGE_PROCS = {
  ConnectNumOfStoragePools: 71,
  ConnectListStoragePools: 72,
  ConnectNumOfDefinedStoragePools: 73,
  ConnectListDefinedStoragePools: 74,
  StoragePoolCreateXML: 76,
  StoragePoolDefineXML: 77,
  StoragePoolCreate: 78,
  StoragePoolBuild: 79,
  StoragePoolDestroy: 80,
  StoragePoolDelete: 81,
  StoragePoolUndefine: 82,
  StoragePoolRefresh: 83,
  StoragePoolLookupByName: 84,
  StoragePoolLookupByUUID: 85,
  StoragePoolLookupByVolume: 86,
  StoragePoolGetInfo: 87,
  StoragePoolGetXMLDesc: 88,
  StoragePoolGetAutostart: 89,
  StoragePoolSetAutostart: 90,
  StoragePoolNumOfVolumes: 91,
  StoragePoolListVolumes: 92,
  StorageVolCreateXML: 93,
  StorageVolDelete: 94,
  StorageVolLookupByName: 95,
  StorageVolLookupByKey: 96,
  StorageVolLookupByPath: 97,
  StorageVolGetInfo: 98,
  StorageVolGetXMLDesc: 99,
  StorageVolGetPath: 100,
  StorageVolCreateXMLFrom: 125,
  StoragePoolIsActive: 154,
  StoragePoolIsPersistent: 155,
  StorageVolUpload: 208,
  StorageVolDownload: 209,
  StorageVolResize: 260,
  ConnectListAllStoragePools: 281,
  StoragePoolListAllVolumes: 282,
  ConnectStoragePoolEventRegisterAny: 368,
  ConnectStoragePoolEventDeregisterAny: 369,
  StorageVolGetInfoFlags: 378,
  ConnectListDefinedNetworks: 36,
  ConnectListNetworks: 38,
  NetworkCreate: 39,
  NetworkCreateXML: 40,
  NetworkDefineXML: 41,
  NetworkDestroy: 42,
  NetworkGetXMLDesc: 43,
  NetworkGetAutostart: 44,
  NetworkGetBridgeName: 45,
  NetworkLookupByName: 46,
  NetworkLookupByUUID: 47,
  NetworkSetAutostart: 48,
  NetworkUndefine: 49,
  ConnectNumOfDefinedNetworks: 50,
  ConnectNumOfNetworks: 52,
  NetworkIsActive: 152,
  NetworkIsPersistent: 153,
  ConnectListAllNetworks: 283,
  NetworkGetDHCPLeases: 341,
  ConnectNetworkEventRegisterAny: 313,
  ConnectNetworkEventDeregisterAny: 314,
} as const;

/** Messages svirt sends. */
export const PROC_NETWORK_EVENT_LIFECYCLE = 315;
export const PROC_STORAGE_POOL_EVENT_LIFECYCLE = 370;
export const PROC_STORAGE_POOL_EVENT_REFRESH = 373;

/** REMOTE_STORAGE_POOL_LIST_MAX, REMOTE_STORAGE_VOL_LIST_MAX, REMOTE_NETWORK_LIST_MAX, REMOTE_NETWORK_DHCP_LEASES_MAX */
export const POOL_LIST_MAX = 4096;
export const VOL_LIST_MAX = 16384;
export const NETWORK_LIST_MAX = 16384;
export const DHCP_LEASES_MAX = 65536;

const STRING_MAX = 4 * 1024 * 1024;

function uuidBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replace(/-/g, ''), 'hex');
}

function uuidString(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** remote_nonnull_network and remote_nonnull_storage_pool: the same two fields. */
export interface WireNamed {
  readonly name: string;
  readonly uuid: string;
}

export interface WireVol {
  readonly pool: string;
  readonly name: string;
  readonly key: string;
}

export function readNamed(r: XdrReader): WireNamed {
  return { name: r.string(STRING_MAX), uuid: uuidString(r.opaqueFixed(16)) };
}

export function writeNamed(w: XdrWriter, n: WireNamed): void {
  w.string(n.name, STRING_MAX).opaqueFixed(uuidBytes(n.uuid), 16);
}

export function readVol(r: XdrReader): WireVol {
  return { pool: r.string(STRING_MAX), name: r.string(STRING_MAX), key: r.string(STRING_MAX) };
}

export function writeVol(w: XdrWriter, v: WireVol): void {
  w.string(v.pool, STRING_MAX).string(v.name, STRING_MAX).string(v.key, STRING_MAX);
}
