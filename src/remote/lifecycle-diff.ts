/**
 * Lifecycle events as differences (src/remote/events.ts): what takes one state of the guests to
 * the next, in the order libvirtd sends them, with the detail their cause explains.
 */
import type { GuestState } from '../store/touched.js';
import type { WireDomain } from './protocol.js';

/** virDomainEventType */
export const Ev = { DEFINED: 0, UNDEFINED: 1, STARTED: 2, SUSPENDED: 3, RESUMED: 4, STOPPED: 5 } as const;
/** The virDomainEvent*DetailType values svirt emits. */
export const Detail = {
  DEFINED_ADDED: 0,
  DEFINED_UPDATED: 1,
  UNDEFINED_REMOVED: 0,
  STARTED_BOOTED: 0,
  STARTED_RESTORED: 2,
  SUSPENDED_PAUSED: 0,
  RESUMED_UNPAUSED: 0,
  STOPPED_SHUTDOWN: 0,
  STOPPED_DESTROYED: 1,
  STOPPED_CRASHED: 2,
  STOPPED_SAVED: 4,
} as const;

/** What caused a change, when the hub is told: a procedure's or a verb's name, or an exit. */
export interface Cause {
  readonly what?: string;
  readonly exited?: { readonly pid: number; readonly signalled: boolean };
  /** The exit's look, after its grace. */
  readonly graced?: boolean;
}

/** The STOPPED detail a cause explains, and the STARTED one. */
function stoppedDetail(c: Cause | undefined, pid: number | null): number {
  const w = c?.what?.toLowerCase() ?? '';
  if (/save/.test(w)) return Detail.STOPPED_SAVED;
  if (/shutdown/.test(w)) return Detail.STOPPED_SHUTDOWN;
  if (/destroy|undefine/.test(w)) return Detail.STOPPED_DESTROYED;
  if (c?.exited && (c.exited.pid === pid || pid === null))
    return c.exited.signalled ? Detail.STOPPED_CRASHED : Detail.STOPPED_SHUTDOWN;
  return Detail.STOPPED_CRASHED; // QEMU gone and nobody asked for it
}

export interface LifecycleEvent {
  readonly dom: WireDomain;
  readonly event: number;
  readonly detail: number;
}

/** The events that take `before` to `now`, in the order libvirt sends them. */
export function diff(
  before: ReadonlyMap<string, GuestState>,
  now: ReadonlyMap<string, GuestState>,
  cause: Cause,
): LifecycleEvent[] {
  const out: LifecycleEvent[] = [];
  const dom = (uuid: string, s: GuestState): WireDomain => ({ name: s.name, uuid, id: s.id });
  for (const [uuid, b] of before) {
    const n = now.get(uuid);
    if (n) continue;
    if (b.state !== 'shut off')
      out.push({ dom: dom(uuid, { ...b, id: -1 }), event: Ev.STOPPED, detail: stoppedDetail(cause, b.pid) });
    if (b.persistent) out.push({ dom: dom(uuid, { ...b, id: -1 }), event: Ev.UNDEFINED, detail: Detail.UNDEFINED_REMOVED });
  }
  for (const [uuid, n] of now) {
    const b = before.get(uuid);
    const d = dom(uuid, n);
    if (n.persistent && (!b || !b.persistent)) out.push({ dom: d, event: Ev.DEFINED, detail: Detail.DEFINED_ADDED });
    else if (n.persistent && b && b.definition !== n.definition)
      out.push({ dom: d, event: Ev.DEFINED, detail: Detail.DEFINED_UPDATED });
    const was = b?.state ?? 'shut off';
    if (was === n.state && b?.pid === n.pid) continue;
    if (was !== 'shut off' && (n.state === 'shut off' || b?.pid !== n.pid)) {
      out.push({ dom: { ...d, id: -1 }, event: Ev.STOPPED, detail: stoppedDetail(cause, b?.pid ?? null) });
    }
    if (n.state !== 'shut off' && (was === 'shut off' || b?.pid !== n.pid)) {
      const restored = /restore/i.test(cause.what ?? '');
      out.push({ dom: d, event: Ev.STARTED, detail: restored ? Detail.STARTED_RESTORED : Detail.STARTED_BOOTED });
      if (n.state === 'paused') out.push({ dom: d, event: Ev.SUSPENDED, detail: Detail.SUSPENDED_PAUSED });
    } else if (was === 'running' && n.state === 'paused') {
      out.push({ dom: d, event: Ev.SUSPENDED, detail: Detail.SUSPENDED_PAUSED });
    } else if (was === 'paused' && n.state === 'running') {
      out.push({ dom: d, event: Ev.RESUMED, detail: Detail.RESUMED_UNPAUSED });
    }
  }
  return out;
}
