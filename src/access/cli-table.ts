/**
 * The permission every CLI verb needs (libvirt's names; docs/access.md). A verb missing here
 * cannot run: the gate refuses it, and a test checks that every verb of src/cli/main.ts has
 * an entry. No imports but types, so the table costs nothing to load.
 */
import type { Permission } from './permissions.js';
import { DOMOPS_CLI_ACCESS } from './domops-access.js';
import { SNAPSHOT_CLI_ACCESS } from './snapshot-access.js';
import { STORAGE_CLI_ACCESS } from './storage-table.js';

export interface VerbAccess {
  /** The permissions needed, all of them. `admin`: only root or the state dir's own user. */
  readonly perms: readonly Permission[] | 'admin' | 'none';
  /** Where the guest comes from: the first argument (a name or uuid), or an XML file. */
  readonly guest?: 'arg0' | 'xml';
  /** An extra permission when a flag is given (`dumpxml --security-info`). */
  readonly flag?: { readonly name: string; readonly perm: Permission };
  /** Changes state: recorded in the audit trail (reads are not, to keep them cheap). */
  readonly audit?: boolean;
  /** The verb makes a new guest (its owner is the caller): named by the XML or by argument 1. */
  readonly creates?: 'xml' | 'arg1';
  /** Label events: `label` after the verb (start), `restore-labels` before it (stop). */
  readonly labels?: 'label' | 'restore-labels';
}

const READ: VerbAccess = { perms: ['domain:read'], guest: 'arg0' };
const WRITE: VerbAccess = { perms: ['domain:write'], guest: 'arg0', audit: true };

export const CLI_ACCESS: Readonly<Record<string, VerbAccess>> = {
  help: { perms: 'none' },
  capabilities: { perms: ['connect:getattr'] },
  define: { perms: ['domain:write', 'domain:save'], guest: 'xml', audit: true, creates: 'xml' },
  undefine: {
    perms: ['domain:delete'],
    guest: 'arg0',
    audit: true,
    flag: { name: 'remove-all-storage', perm: 'storage-vol:delete' },
  },
  list: { perms: ['connect:search-domains'] },
  create: { perms: ['domain:write', 'domain:start'], guest: 'xml', audit: true, creates: 'xml', labels: 'label' },
  start: { perms: ['domain:start'], guest: 'arg0', audit: true, labels: 'label' },
  shutdown: { perms: ['domain:stop'], guest: 'arg0', audit: true, labels: 'restore-labels' },
  destroy: { perms: ['domain:stop'], guest: 'arg0', audit: true, labels: 'restore-labels' },
  reset: { perms: ['domain:reset'], guest: 'arg0', audit: true },
  suspend: { perms: ['domain:suspend'], guest: 'arg0', audit: true },
  resume: { perms: ['domain:suspend'], guest: 'arg0', audit: true },
  dominfo: READ,
  domstate: READ,
  domuuid: { perms: ['domain:getattr'], guest: 'arg0' },
  dumpxml: { ...READ, flag: { name: 'security-info', perm: 'domain:read-secure' } },
  seclabel: READ,
  profile: { perms: 'admin' },
  reconcile: { perms: 'admin', audit: true },
  'attach-disk': WRITE,
  'attach-device': WRITE,
  'detach-disk': WRITE,
  'change-media': WRITE,
  save: { perms: ['domain:hibernate'], guest: 'arg0', audit: true, labels: 'restore-labels' },
  // The guest is in the state file: only the admin restores (docs/access.md).
  restore: { perms: 'admin', audit: true, labels: 'label' },
  clone: { perms: ['domain:read', 'domain:write'], guest: 'arg0', audit: true, creates: 'arg1' },
  migrate: { perms: ['domain:migrate'], guest: 'arg0', audit: true, labels: 'restore-labels' },
  'net-define': { perms: ['network:write'], audit: true },
  'net-undefine': { perms: ['network:write'], audit: true },
  'net-start': { perms: ['network:start'], audit: true },
  'net-destroy': { perms: ['network:stop'], audit: true },
  'net-list': { perms: ['connect:search-networks'] },
  'net-info': { perms: ['network:read'] },
  'net-dumpxml': { perms: ['network:read'] },
  'net-autostart': { perms: ['network:write'], audit: true },
  'net-dhcp-leases': { perms: ['network:read'] },
  'attach-interface': WRITE,
  'detach-interface': WRITE,
  domiflist: READ,
  domifaddr: READ,
  console: { perms: ['domain:open-console'], guest: 'arg0', audit: true },
  domdisplay: READ,
  vncdisplay: READ,
  screenshot: { perms: ['domain:screenshot'], guest: 'arg0', audit: true },
  'qemu-agent-command': WRITE,
  demo: { perms: 'admin' },
  report: { perms: 'admin' },
  serve: { perms: 'admin' },
  audit: { perms: 'admin' },
  ...DOMOPS_CLI_ACCESS,
  ...SNAPSHOT_CLI_ACCESS,
  ...STORAGE_CLI_ACCESS,
};
