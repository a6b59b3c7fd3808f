/**
 * Permissions of the snapshot verbs and procedures (issue 14 part 6), spread into
 * remote-table.ts and cli-table.ts: libvirt's `@acl` (domain:snapshot to take, revert or
 * delete one; domain:read to look). No imports but types.
 */
import type { SnapshotProc } from '../remote/snapshot-protocol.js';
import type { Permission } from './permissions.js';

interface ProcAccess {
  readonly perms: readonly Permission[] | 'admin';
  readonly guest?: 'dom';
  readonly audit?: boolean;
}
interface VerbAccess {
  readonly perms: readonly Permission[] | 'admin';
  readonly guest?: 'arg0';
  readonly audit?: boolean;
}

const READ: ProcAccess = { perms: ['domain:read'], guest: 'dom' };
const SNAP: ProcAccess = { perms: ['domain:snapshot'], guest: 'dom', audit: true };

export const SNAPSHOT_REMOTE_ACCESS: Readonly<Record<keyof typeof SnapshotProc, ProcAccess>> = {
  DomainSnapshotCreateXML: SNAP,
  DomainRevertToSnapshot: SNAP,
  DomainSnapshotDelete: SNAP,
  DomainSnapshotGetXMLDesc: READ,
  DomainSnapshotNum: READ,
  DomainSnapshotListNames: READ,
  DomainSnapshotLookupByName: READ,
  DomainHasCurrentSnapshot: READ,
  DomainSnapshotCurrent: READ,
  DomainSnapshotGetParent: READ,
  DomainSnapshotNumChildren: READ,
  DomainSnapshotListChildrenNames: READ,
  DomainSnapshotIsCurrent: READ,
  DomainSnapshotHasMetadata: READ,
  DomainListAllSnapshots: READ,
  DomainSnapshotListAllChildren: READ,
};

const VREAD: VerbAccess = { perms: ['domain:read'], guest: 'arg0' };
const VSNAP: VerbAccess = { perms: ['domain:snapshot'], guest: 'arg0', audit: true };

export const SNAPSHOT_CLI_ACCESS: Readonly<Record<string, VerbAccess>> = {
  'snapshot-create-as': VSNAP,
  'snapshot-create': VSNAP,
  'snapshot-revert': VSNAP,
  'snapshot-delete': VSNAP,
  'snapshot-list': VREAD,
  'snapshot-info': VREAD,
  'snapshot-dumpxml': VREAD,
  'snapshot-current': VREAD,
};
