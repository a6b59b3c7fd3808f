/**
 * Network and storage pool lifecycle events (`virsh net-event`, `pool-event`, virt-manager),
 * the way src/remote/events.ts makes domain events: what was last seen of every network and
 * pool (defined, active) is compared with the store whenever the domain hub is told that
 * something changed (a write procedure, a CLI verb's `changed VERB`), and every few seconds
 * while anyone listens. Each difference is one event.
 */
import type { Hypervisor } from '../lifecycle/hypervisor.js';
import { PROC_NETWORK_EVENT_LIFECYCLE, PROC_STORAGE_POOL_EVENT_LIFECYCLE, writeNamed } from './storage-protocol.js';
import { XdrWriter } from './xdr.js';
import { StoragePools } from '../lifecycle/storage.js';
import { Networks } from '../lifecycle/networks.js';

/** virNetworkEventLifecycleType and virStoragePoolEventLifecycleType share these numbers. */
export const ObjEv = { DEFINED: 0, UNDEFINED: 1, STARTED: 2, STOPPED: 3 } as const;
/** VIR_NETWORK_EVENT_ID_LIFECYCLE, VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE (and _REFRESH, accepted, never sent). */
export const OBJ_EVENT_ID_LIFECYCLE = 0;
export const OBJ_EVENT_ID_LAST = { network: 1, pool: 2 } as const;
const MAX_REGISTRATIONS = 64;

export type ObjectKind = 'network' | 'pool';

interface Sink {
  send(proc: number, body: XdrWriter): void;
}

interface Registration {
  readonly sink: Sink;
  readonly kind: ObjectKind;
  readonly eventId: number;
  readonly uuid?: string;
}

interface SeenObj {
  readonly name: string;
  readonly active: boolean;
}

type Snapshot = Map<string, SeenObj>;

export class ObjectEventHub {
  private readonly regs = new Map<number, Registration>();
  private nextId = 1;
  private seen: Record<ObjectKind, Snapshot> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly hv: Hypervisor,
    private readonly log: (line: string) => void,
    private readonly sweepMs = 3000,
  ) {}

  register(sink: Sink, kind: ObjectKind, eventId: number, uuid?: string): number {
    let held = 0;
    for (const r of this.regs.values()) if (r.sink === sink) held++;
    if (held >= MAX_REGISTRATIONS)
      throw new RangeError(`at most ${MAX_REGISTRATIONS} network and pool event registrations per client`);
    this.seen ??= this.look();
    const id = this.nextId++;
    this.regs.set(id, { sink, kind, eventId, ...(uuid ? { uuid } : {}) });
    this.timer ??= setInterval(() => this.changed(), this.sweepMs).unref();
    return id;
  }

  deregister(sink: Sink, kind: ObjectKind, id: number): boolean {
    const r = this.regs.get(id);
    if (!r || r.sink !== sink || r.kind !== kind) return false;
    this.regs.delete(id);
    this.idle();
    return true;
  }

  drop(sink: Sink): void {
    for (const [id, r] of [...this.regs]) if (r.sink === sink) this.regs.delete(id);
    this.idle();
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.regs.clear();
  }

  private idle(): void {
    if (this.regs.size > 0) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.seen = undefined;
  }

  private look(): Record<ObjectKind, Snapshot> {
    const network: Snapshot = new Map(
      new Networks(this.hv.env).list().map((n) => [n.def.uuid, { name: n.def.name, active: n.active }]),
    );
    const pool: Snapshot = new Map(
      new StoragePools(this.hv.env).store.list().map((p) => [p.uuid, { name: p.name, active: p.active }]),
    );
    return { network, pool };
  }

  /** Compares with what was seen and sends each difference. */
  changed(): void {
    if (this.regs.size === 0) return;
    const before = this.seen ?? { network: new Map(), pool: new Map() };
    let now: Record<ObjectKind, Snapshot>;
    try {
      now = this.look();
    } catch (err) {
      this.log(`events: cannot read networks and pools: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    this.seen = now;
    for (const kind of ['network', 'pool'] as const) {
      for (const e of objectDiff(before[kind], now[kind])) this.emit(kind, e.uuid, e.name, e.event);
    }
  }

  private emit(kind: ObjectKind, uuid: string, name: string, event: number): void {
    for (const [id, r] of this.regs) {
      if (r.kind !== kind || r.eventId !== OBJ_EVENT_ID_LIFECYCLE || (r.uuid !== undefined && r.uuid !== uuid)) continue;
      const w = new XdrWriter(96);
      w.int(id);
      writeNamed(w, { name, uuid });
      w.int(event).int(0);
      r.sink.send(kind === 'network' ? PROC_NETWORK_EVENT_LIFECYCLE : PROC_STORAGE_POOL_EVENT_LIFECYCLE, w);
    }
  }
}

/** The lifecycle events that take `before` to `now` (defined, started, stopped, undefined). */
export function objectDiff(
  before: ReadonlyMap<string, SeenObj>,
  now: ReadonlyMap<string, SeenObj>,
): { uuid: string; name: string; event: number }[] {
  const out: { uuid: string; name: string; event: number }[] = [];
  for (const [uuid, b] of before) {
    if (now.has(uuid)) continue;
    if (b.active) out.push({ uuid, name: b.name, event: ObjEv.STOPPED });
    out.push({ uuid, name: b.name, event: ObjEv.UNDEFINED });
  }
  for (const [uuid, n] of now) {
    const b = before.get(uuid);
    if (!b) out.push({ uuid, name: n.name, event: ObjEv.DEFINED });
    if ((b?.active ?? false) !== n.active) out.push({ uuid, name: n.name, event: n.active ? ObjEv.STARTED : ObjEv.STOPPED });
  }
  return out;
}
