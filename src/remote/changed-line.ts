/**
 * The reports a CLI verb's `changed VERB [JSON]` line carries (src/cli/notify-serve.ts): the
 * state of each guest its store writes touched. The peer is svirt's own uid (the listener checks
 * SO_PEERCRED), but a report is still read as untrusted input: every field is checked, and only
 * the known ones are kept.
 */
import { isCanonicalUuid } from '../host/uuid.js';
import { MAX_TOUCHED, type GuestState, type TouchedReport } from '../store/touched.js';

/** Bytes of a `changed` line, newline included: 16 reports with names of a few hundred bytes. */
export const CHANGED_LINE_MAX = 8192;

const STATES: ReadonlySet<string> = new Set(['running', 'paused', 'shut off']);
/** Linux's largest pid_max. */
const PID_MAX = 4_194_304;

const isInt = (v: unknown, min: number, max: number): v is number =>
  Number.isInteger(v) && (v as number) >= min && (v as number) <= max;

function stateFrom(v: unknown): GuestState | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const { name, id, state, persistent, definition, pid } = o;
  if (typeof name !== 'string' || name.length === 0 || name.length > 1024) return undefined;
  if (!isInt(id, -1, 2 ** 31 - 1) || typeof state !== 'string' || !STATES.has(state)) return undefined;
  if (typeof persistent !== 'boolean' || !isInt(definition, 0, 2 ** 32 - 1)) return undefined;
  if (pid !== null && !isInt(pid, 1, PID_MAX)) return undefined;
  return { name, id, state: state as GuestState['state'], persistent, definition, pid: pid as number | null };
}

/** The reports in `text` (a JSON array), or undefined when anything in it is not as a CLI writes it. */
export function parseReports(text: string): TouchedReport[] | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_TOUCHED) return undefined;
  const out: TouchedReport[] = [];
  const uuids = new Set<string>();
  for (const r of v as unknown[]) {
    if (typeof r !== 'object' || r === null) return undefined;
    const { uuid, now } = r as Record<string, unknown>;
    if (typeof uuid !== 'string' || !isCanonicalUuid(uuid) || uuids.has(uuid)) return undefined;
    uuids.add(uuid);
    const state = now === 'gone' ? 'gone' : stateFrom(now);
    if (state === undefined) return undefined;
    out.push({ uuid, now: state });
  }
  return out;
}
