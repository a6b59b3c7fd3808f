/**
 * The permission of every remote procedure (libvirt's `@acl` annotations of
 * remote_protocol.x, in svirt's words). The server refuses a procedure without an entry,
 * and a test checks that every registered procedure has one. No imports but types.
 */
import type { ProcName } from '../remote/protocol.js';
import type { Permission } from './permissions.js';
import { DOMOPS_REMOTE_ACCESS } from './domops-access.js';
import { GRAPHICS_REMOTE_ACCESS } from './graphics-access.js';
import { SNAPSHOT_REMOTE_ACCESS } from './snapshot-access.js';
import { STORAGE_REMOTE_ACCESS } from './storage-remote-table.js';

export interface ProcAccess {
  /** Needed, all of them; `none`: the protocol's own handshake; `admin`: root or the server's user only. */
  readonly perms: readonly Permission[] | 'none' | 'admin';
  /** Where the guest is: the `dom` argument, or a domain XML argument (define, create). */
  readonly guest?: 'dom' | 'xml';
  /** An extra permission for a flag bit (`VIR_DOMAIN_XML_SECURE`). */
  readonly flag?: { readonly bit: number; readonly perm: Permission };
  /** Changes state: recorded in the audit trail. */
  readonly audit?: boolean;
  /** Label events recorded around it (start: `label`; stop, save: `restore-labels`). */
  readonly labels?: 'label' | 'restore-labels';
  /** The procedure makes a guest the caller then owns. */
  readonly creates?: boolean;
}

const NONE: ProcAccess = { perms: 'none' };
const CONNECT: ProcAccess = { perms: ['connect:getattr'] };
const SEARCH: ProcAccess = { perms: ['connect:search-domains'] };
/** libvirt's connect:read: facts about the host. */
const HOST: ProcAccess = { perms: ['connect:read'] };
const GETATTR: ProcAccess = { perms: ['domain:getattr'], guest: 'dom' };
const READ: ProcAccess = { perms: ['domain:read'], guest: 'dom' };
const WRITE: ProcAccess = { perms: ['domain:write'], guest: 'dom', audit: true };
const START: ProcAccess = { perms: ['domain:start'], guest: 'dom', audit: true, labels: 'label' };
const STOP: ProcAccess = { perms: ['domain:stop'], guest: 'dom', audit: true, labels: 'restore-labels' };
const DEFINE: ProcAccess = { perms: ['domain:write', 'domain:save'], guest: 'xml', audit: true, creates: true };
const UNDEFINE: ProcAccess = { perms: ['domain:delete'], guest: 'dom', audit: true };
const SUSPEND: ProcAccess = { perms: ['domain:suspend'], guest: 'dom', audit: true };
const SAVE: ProcAccess = { perms: ['domain:hibernate'], guest: 'dom', audit: true, labels: 'restore-labels' };

/** VIR_DOMAIN_XML_SECURE */
const XML_SECURE = 1;

export const REMOTE_ACCESS: Readonly<Record<ProcName, ProcAccess>> = {
  AuthList: NONE,
  ConnectSupportsFeature: NONE,
  ConnectOpen: NONE, // admission is checked by the gate itself (rules on the read-write socket)
  ConnectClose: NONE,
  ConnectRegisterCloseCallback: NONE,
  ConnectUnregisterCloseCallback: NONE,
  ConnectGetCapabilities: CONNECT,
  ConnectGetType: CONNECT,
  ConnectGetVersion: CONNECT,
  ConnectGetLibVersion: CONNECT,
  ConnectGetHostname: CONNECT,
  ConnectGetURI: CONNECT,
  ConnectIsSecure: CONNECT,
  NodeGetInfo: CONNECT,
  NodeGetSecurityModel: CONNECT,
  // Listing is also filtered guest by guest on domain:getattr (the session's `canSee`).
  ConnectListAllDomains: SEARCH,
  ConnectNumOfDomains: SEARCH,
  ConnectListDomains: SEARCH,
  ConnectNumOfDefinedDomains: SEARCH,
  ConnectListDefinedDomains: SEARCH,
  DomainDefineXML: DEFINE,
  DomainDefineXMLFlags: DEFINE,
  DomainUndefine: UNDEFINE,
  DomainUndefineFlags: UNDEFINE,
  DomainCreate: START,
  DomainCreateWithFlags: START,
  DomainCreateXML: { perms: ['domain:write', 'domain:start'], guest: 'xml', audit: true, creates: true, labels: 'label' },
  DomainDestroy: STOP,
  DomainDestroyFlags: STOP,
  DomainShutdown: STOP,
  DomainShutdownFlags: STOP,
  DomainSuspend: SUSPEND,
  DomainResume: SUSPEND,
  DomainAttachDevice: WRITE,
  DomainAttachDeviceFlags: WRITE,
  DomainDetachDevice: WRITE,
  DomainDetachDeviceFlags: WRITE,
  DomainSave: SAVE,
  DomainSaveFlags: SAVE,
  // The guest is named inside the state file: only the admin restores (docs/access.md).
  DomainRestore: { perms: 'admin', audit: true, labels: 'label' },
  DomainRestoreFlags: { perms: 'admin', audit: true, labels: 'label' },
  // Migration (docs/migration.md): the source's steps need domain:migrate on the guest; the
  // destination's take a guest from a peer's XML and cookie, so only the admin receives one.
  DomainMigrateBegin3Params: { perms: ['domain:migrate'], guest: 'dom', audit: true },
  DomainMigratePerform3Params: { perms: ['domain:migrate'], guest: 'dom', audit: true },
  DomainMigrateConfirm3Params: { perms: ['domain:migrate'], guest: 'dom', audit: true, labels: 'restore-labels' },
  DomainMigratePrepare3Params: { perms: 'admin', audit: true, labels: 'label' },
  DomainMigrateFinish3Params: { perms: 'admin', audit: true },
  // Lookups and listing are filtered by domain:getattr (an unseen guest is "not found").
  DomainLookupByName: NONE,
  DomainLookupByUUID: NONE,
  DomainLookupByID: NONE,
  DomainGetOSType: READ,
  DomainGetInfo: READ,
  DomainGetMaxMemory: READ,
  DomainGetState: READ,
  DomainIsActive: GETATTR,
  DomainIsPersistent: GETATTR,
  DomainIsUpdated: GETATTR,
  DomainGetAutostart: READ,
  DomainHasManagedSaveImage: READ,
  DomainGetMessages: READ,
  DomainGetJobInfo: READ,
  DomainGetXMLDesc: { perms: ['domain:read'], guest: 'dom', flag: { bit: XML_SECURE, perm: 'domain:read-secure' } },
  DomainGetSecurityLabel: READ,
  DomainGetSecurityLabelList: READ,
  // Events: registering is searching; each event is sent only for a guest the client may see.
  ConnectDomainEventRegister: SEARCH,
  ConnectDomainEventDeregister: NONE,
  ConnectDomainEventRegisterAny: SEARCH,
  ConnectDomainEventDeregisterAny: NONE,
  ConnectDomainEventCallbackRegisterAny: SEARCH,
  ConnectDomainEventCallbackDeregisterAny: NONE,
  ConnectGetMaxVcpus: HOST,
  NodeGetCellsFreeMemory: HOST,
  NodeGetFreeMemory: HOST,
  ConnectGetSysinfo: HOST,
  NodeGetCPUStats: HOST,
  NodeGetMemoryStats: HOST,
  NodeGetCPUMap: HOST,
  ConnectGetDomainCapabilities: HOST,
  DomainOpenConsole: { perms: ['domain:open-console'], guest: 'dom', audit: true },
  DomainGetVcpus: READ,
  DomainBlockStats: READ,
  DomainMemoryStats: READ,
  DomainGetBlockInfo: READ,
  // Listing all guests' stats is filtered by domain:getattr (src/remote/procedures/stats.ts).
  ConnectGetAllDomainStats: SEARCH,
  DomainReset: { perms: ['domain:reset'], guest: 'dom', audit: true },
  ...DOMOPS_REMOTE_ACCESS,
  ...GRAPHICS_REMOTE_ACCESS,
  ...SNAPSHOT_REMOTE_ACCESS,
  ...STORAGE_REMOTE_ACCESS,
};
