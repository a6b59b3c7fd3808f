/**
 * Permissions of the everyday domain operations (issue 14 parts 6 and 7), spread into
 * remote-table.ts and cli-table.ts. libvirt's own `@acl` annotations, in svirt's words; where
 * libvirt has a finer permission svirt does not name yet (domain:send-input, domain:set-time),
 * the broader domain:write is asked. No imports but types.
 */
import type { DomopsProc } from '../remote/domops-protocol.js';
import type { Permission } from './permissions.js';

/** The shapes of remote-table.ts's ProcAccess and cli-table.ts's VerbAccess (they import this file). */
interface ProcAccess {
  readonly perms: readonly Permission[] | 'admin';
  readonly guest?: 'dom';
  readonly flag?: { readonly bit: number; readonly perm: Permission };
  readonly audit?: boolean;
  readonly labels?: 'label' | 'restore-labels';
}
interface VerbAccess {
  readonly perms: readonly Permission[] | 'admin';
  readonly guest?: 'arg0';
  readonly audit?: boolean;
  readonly labels?: 'label' | 'restore-labels';
}

/** VIR_DOMAIN_AFFECT_CONFIG: changing the persistent definition also needs domain:save. */
const AFFECT_CONFIG = 2;

const READ: ProcAccess = { perms: ['domain:read'], guest: 'dom' };
const WRITE: ProcAccess = { perms: ['domain:write'], guest: 'dom', audit: true };
const TUNE: ProcAccess = { ...WRITE, flag: { bit: AFFECT_CONFIG, perm: 'domain:save' } };
const HIBERNATE: ProcAccess = { perms: ['domain:hibernate'], guest: 'dom', audit: true };

export const DOMOPS_REMOTE_ACCESS: Readonly<Record<keyof typeof DomopsProc, ProcAccess>> = {
  DomainGetMaxVcpus: READ,
  DomainGetVcpusFlags: READ,
  DomainSetAutostart: { perms: ['domain:write', 'domain:save'], guest: 'dom', audit: true },
  DomainSetMaxMemory: TUNE,
  DomainSetMemory: TUNE,
  DomainSetMemoryFlags: TUNE,
  DomainSetVcpus: TUNE,
  DomainSetVcpusFlags: TUNE,
  DomainUpdateDeviceFlags: TUNE,
  DomainManagedSave: { ...HIBERNATE, labels: 'restore-labels' },
  DomainManagedSaveRemove: HIBERNATE,
  DomainScreenshot: { perms: ['domain:screenshot'], guest: 'dom', audit: true },
  DomainSendKey: WRITE,
  DomainSetMetadata: TUNE,
  DomainGetMetadata: READ,
  DomainGetTime: READ,
  DomainSetTime: WRITE,
  DomainRename: { perms: ['domain:write', 'domain:save'], guest: 'dom', audit: true },
  // Read-write socket only (the procedure writes); every use is in the audit trail and taints the run.
  QemuDomainMonitorCommand: WRITE,
  QemuDomainAgentCommand: WRITE,
};

const VWRITE: VerbAccess = { perms: ['domain:write'], guest: 'arg0', audit: true };

export const DOMOPS_CLI_ACCESS: Readonly<Record<string, VerbAccess>> = {
  managedsave: { perms: ['domain:hibernate'], guest: 'arg0', audit: true, labels: 'restore-labels' },
  'managedsave-remove': { perms: ['domain:hibernate'], guest: 'arg0', audit: true },
  autostart: { perms: ['domain:write', 'domain:save'], guest: 'arg0', audit: true },
  'autostart-all': { perms: 'admin', audit: true },
  setmem: VWRITE,
  setmaxmem: VWRITE,
  setvcpus: VWRITE,
  vcpucount: { perms: ['domain:read'], guest: 'arg0' },
  'update-device': VWRITE,
  domrename: { perms: ['domain:write', 'domain:save'], guest: 'arg0', audit: true },
  domtime: VWRITE,
  metadata: VWRITE,
  desc: VWRITE,
  'send-key': VWRITE,
  'qemu-monitor-command': VWRITE,
};
