/** Procedure numbers of the snapshot procedures (issue 14 part 6), from remote_protocol.x. */
export const SnapshotProc = {
  DomainSnapshotCreateXML: 185,
  DomainSnapshotGetXMLDesc: 186,
  DomainSnapshotNum: 187,
  DomainSnapshotListNames: 188,
  DomainSnapshotLookupByName: 189,
  DomainHasCurrentSnapshot: 190,
  DomainSnapshotCurrent: 191,
  DomainRevertToSnapshot: 192,
  DomainSnapshotDelete: 193,
  DomainSnapshotGetParent: 244,
  DomainSnapshotNumChildren: 246,
  DomainSnapshotListChildrenNames: 247,
  DomainSnapshotIsCurrent: 271,
  DomainSnapshotHasMetadata: 272,
  DomainListAllSnapshots: 274,
  DomainSnapshotListAllChildren: 275,
} as const;
