import { SvirtError } from '../../errors.js';
import type { GuestBrief } from '../../lifecycle/guest.js';
import { LIST, LIST_STATES, listFacts, matchesListFilter, type SnapshotLister } from '../../lifecycle/list-filter.js';
import type { ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';

/** virsh list's filter options and the flag each sets (virConnectListAllDomains'). */
const FILTERS: Readonly<Record<string, number>> = {
  inactive: LIST.INACTIVE,
  all: LIST.ACTIVE | LIST.INACTIVE,
  persistent: LIST.PERSISTENT,
  transient: LIST.TRANSIENT,
  'state-running': LIST.RUNNING,
  'state-paused': LIST.PAUSED,
  'state-shutoff': LIST.SHUTOFF,
  'state-other': LIST.OTHER,
  'with-managed-save': LIST.MANAGEDSAVE,
  'without-managed-save': LIST.NO_MANAGEDSAVE,
  autostart: LIST.AUTOSTART,
  'no-autostart': LIST.NO_AUTOSTART,
  'with-snapshot': LIST.HAS_SNAPSHOT,
  'without-snapshot': LIST.NO_SNAPSHOT,
};

/**
 * The flags virsh list sends for these options: running guests only unless --all, --inactive
 * or a --state-* option says otherwise (as virsh: `list --state-shutoff` lists shut-off guests).
 */
export function listFlags(flags: ReadonlySet<string>): number {
  let f = 0;
  for (const [name, bits] of Object.entries(FILTERS)) if (flags.has(name)) f |= bits;
  if ((f & (LIST.ACTIVE | LIST.INACTIVE | LIST_STATES)) === 0) f |= LIST.ACTIVE;
  return f;
}

/**
 * virsh's table: ` Id   Name   State`, a dash rule, one row per guest; `--name` and `--uuid`
 * print one column. The filters read a guest's autostart mark, managed save or snapshots only
 * when asked for.
 */
export async function run(args: ParsedArgs): Promise<number> {
  if (args.flags.has('title')) throw new SvirtError('SVIRT_ERR_USAGE', 'list: --title is not supported (svirt shows no titles)');
  const hv = await openHypervisor(args);
  const flags = listFlags(args.flags);
  const wantsSnapshots = (flags & (LIST.HAS_SNAPSHOT | LIST.NO_SNAPSHOT)) !== 0;
  // Only a listing that asks for snapshots loads their table's code.
  const snapshots: SnapshotLister | undefined = wantsSnapshots
    ? new (await import('../../lifecycle/snapshots/snapshot-store.js')).SnapshotStore(hv.store.db)
    : undefined;
  const facts = listFacts(hv, () => {
    if (snapshots === undefined) throw new SvirtError('SVIRT_ERR_INTERNAL', 'list: snapshots asked for without a snapshot flag');
    return snapshots;
  });
  const savedShown = args.flags.has('managed-save');
  const state = (d: GuestBrief): string => (savedShown && d.state === 'shut off' && hv.hasManagedSave(d) ? 'saved' : d.state);
  const rows = hv
    .listBrief()
    .filter((d) => matchesListFilter(d, flags, facts(d)))
    .map((d) => ({
      id: d.id === undefined ? '-' : String(d.id),
      name: d.name,
      state: state(d),
      uuid: d.uuid,
      persistent: d.persistent,
    }));
  for (const only of ['name', 'uuid'] as const) {
    if (!args.flags.has(only)) continue;
    const column = rows.map((r) => r[only]);
    output(args, column.join('\n') + '\n', column);
    return 0;
  }
  const idW = Math.max(2, ...rows.map((r) => r.id.length));
  const nameW = Math.max(4, ...rows.map((r) => r.name.length));
  const header = ` ${'Id'.padEnd(idW)}   ${'Name'.padEnd(nameW)}   State`;
  const lines = [header, '-'.repeat(header.length + 2)];
  for (const r of rows) lines.push(` ${r.id.padEnd(idW)}   ${r.name.padEnd(nameW)}   ${r.state}`);
  output(args, lines.join('\n') + '\n', rows);
  return 0;
}
