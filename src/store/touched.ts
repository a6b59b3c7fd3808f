/**
 * The guests a CLI command's store writes touched, and the state each was left in: what the
 * command tells a running `svirt serve` (src/cli/notify-serve.ts), so serve sends its clients
 * the events of that change even when it reads the word late. Serve's own look at the store
 * (src/remote/events.ts) sees only the state at the time it looks: a start and a destroy done
 * while it was descheduled left nothing to see.
 *
 * One command per CLI process: the collection is this process's while the dispatcher runs a
 * changing verb; outside one (serve, the library) a write notes nothing.
 */
import { fnv1a32 } from '../host/fingerprint.js';

/** A guest as lifecycle events tell it apart: what a look records of it. */
export interface GuestState {
  readonly name: string;
  /** Its `list` id while it runs, else -1. */
  readonly id: number;
  readonly state: 'running' | 'paused' | 'shut off';
  readonly persistent: boolean;
  /** FNV-1a of its stored definition (0 when it has none): a change is Defined Updated. */
  readonly definition: number;
  readonly pid: number | null;
}

/** The store's rows of one guest (the fields a state is made of). */
export interface GuestRows {
  readonly running?: {
    readonly name: string;
    readonly id: number;
    readonly state: string;
    readonly pid: number | null;
    readonly paused: boolean;
  };
  readonly defined?: { readonly name: string; readonly xml: string };
}

/** The state of a guest from its rows; undefined when it has none (gone). */
export function stateOf(rows: GuestRows): GuestState | undefined {
  const { running: rec, defined } = rows;
  const name = rec?.name ?? defined?.name;
  if (name === undefined) return undefined;
  // A guest being started counts once it runs; one being stopped, until it is gone.
  const up = rec !== undefined && rec.state !== 'starting' && rec.pid !== null;
  return {
    name,
    id: up ? rec.id : -1,
    state: up ? (rec.paused ? 'paused' : 'running') : 'shut off',
    persistent: defined !== undefined,
    definition: defined === undefined ? 0 : fnv1a32(defined.xml),
    pid: up ? rec.pid : null,
  };
}

/** At most this many guests are told one by one; a command that touched more says only its verb. */
export const MAX_TOUCHED = 16;

/** Reads a touched guest's rows (again), or undefined when its store was closed unsettled. */
export type RowsReader = (uuid: string) => GuestRows | undefined;

let collecting: Map<string, RowsReader> | undefined;
let overflowed = false;

/** A store write changed guest `uuid` (a definition, a running record); nothing outside a collection. */
export function noteTouched(uuid: string, read: RowsReader): void {
  if (collecting === undefined || collecting.has(uuid)) return;
  if (collecting.size >= MAX_TOUCHED) overflowed = true;
  else collecting.set(uuid, read);
}

/**
 * A store is about to close (a command's store is closed by the access gate before the command
 * speaks): the rows of the guests it touched are read now and kept.
 */
export function settleTouched(read: RowsReader): void {
  if (collecting === undefined) return;
  for (const [uuid, r] of collecting) {
    if (r !== read) continue;
    const rows = read(uuid);
    collecting.set(uuid, () => rows);
  }
}

/**
 * Runs `run`, collecting the guests its store writes touched. `touched` is undefined when they
 * were more than {@link MAX_TOUCHED}.
 */
export async function collectTouched<T>(
  run: () => Promise<T>,
): Promise<{ result: T; touched?: ReadonlyMap<string, RowsReader> }> {
  const before = [collecting, overflowed] as const;
  const map = new Map<string, RowsReader>();
  collecting = map;
  overflowed = false;
  try {
    const result = await run();
    return overflowed ? { result } : { result, touched: map };
  } finally {
    [collecting, overflowed] = before;
  }
}

/** What a command says of each guest it touched: its state now, or that it is gone. */
export interface TouchedReport {
  readonly uuid: string;
  readonly now: GuestState | 'gone';
}

/** The states of the touched guests as the command left them; undefined if a store was closed meanwhile. */
export function touchedReports(touched: ReadonlyMap<string, RowsReader>): TouchedReport[] | undefined {
  const out: TouchedReport[] = [];
  for (const [uuid, read] of touched) {
    const rows = read(uuid);
    if (rows === undefined) return undefined;
    out.push({ uuid, now: stateOf(rows) ?? 'gone' });
  }
  return out;
}
