/** The snapshot verbs (issue 14 part 6), spread into main.ts's table (loaded on demand, like every verb). */
import type { ParsedArgs } from './args.js';
import type * as SnapshotVerbs from './commands/snapshot.js';

type Verb = () => Promise<{ run: (args: ParsedArgs) => Promise<number> }>;
type Ops = typeof SnapshotVerbs;
type RunName = { [K in keyof Ops]: Ops[K] extends (a: ParsedArgs) => Promise<number> ? K : never }[keyof Ops];

const verb =
  (name: RunName): Verb =>
  () =>
    import('./commands/snapshot.js').then((m) => ({ run: m[name] }));

export const SNAPSHOT_VERBS: Readonly<Record<string, Verb>> = {
  'snapshot-create-as': verb('runSnapshotCreateAs'),
  'snapshot-create': verb('runSnapshotCreate'),
  'snapshot-list': verb('runSnapshotList'),
  'snapshot-info': verb('runSnapshotInfo'),
  'snapshot-dumpxml': verb('runSnapshotDumpxml'),
  'snapshot-current': verb('runSnapshotCurrent'),
  'snapshot-revert': verb('runSnapshotRevert'),
  'snapshot-delete': verb('runSnapshotDelete'),
};

/** Those that change a guest: a running serve is told (notify-serve.ts). */
export const SNAPSHOT_CHANGING: readonly string[] = [
  'snapshot-create-as',
  'snapshot-create',
  'snapshot-revert',
  'snapshot-delete',
];

export const SNAPSHOT_USAGE = `  snapshot-create-as NAME [SNAP] [--description D] [--disk-only] [--diskspec vda,snapshot=external,file=PATH]
  snapshot-create NAME [FILE] [--disk-only]   internal (qcow2; RAM too when running) or external overlays (docs/snapshots.md)
  snapshot-list NAME [--name] | snapshot-info NAME SNAP|--current | snapshot-dumpxml NAME SNAP | snapshot-current NAME [--name]
  snapshot-revert NAME SNAP|--current | snapshot-delete NAME SNAP|--current [--metadata]`;
