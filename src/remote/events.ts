/**
 * Domain lifecycle events for `svirt serve`'s clients (issue 14): virsh event, virt-manager,
 * python-libvirt's event loop. svirt has no daemon that sees every change happen, so the hub
 * keeps what it last saw of every guest (state, persistence, definition) and, when told that
 * something changed, compares: each difference is an event, its detail taken from what caused
 * it when the hub was told (a procedure of this server, a CLI verb through the notify socket,
 * a QEMU that exited).
 *
 * Told by: every write procedure of this server; `changed VERB` lines on the notify socket
 * (src/cli/notify-serve.ts, sent by each CLI verb that changes a guest); the monitors'
 * `exited` lines. A slow look every few seconds while anyone listens catches what nobody told.
 */
import { parseDomainXml } from '../domain/index.js';
import type { Hypervisor } from '../lifecycle/hypervisor.js';
import { stateOf, type GuestState, type TouchedReport } from '../store/touched.js';
import { diff, type Cause, type LifecycleEvent } from './lifecycle-diff.js';
import * as dev from './device-events.js';
import { ObjectEventHub } from './object-events.js';
import { writeDomain } from './protocol.js';
import { XdrWriter } from './xdr.js';

/** VIR_DOMAIN_EVENT_ID_LIFECYCLE; ids up to LAST are accepted (libvirt 9.0 knows 0..26). */
export const EVENT_ID_LIFECYCLE = 0;
export const EVENT_ID_LAST = 26;
/** remote_protocol.x: the old-style and the callback lifecycle messages. */
export const PROC_DOMAIN_EVENT_LIFECYCLE = 107;
export const PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE = 318;
/** Registrations one client may hold (virsh event --all takes one per event id). */
export const MAX_REGISTRATIONS = 256;

/** A client's end: sends one message, and says whether it may see a guest (access rules). */
export interface EventSink {
  readonly id: number;
  send(proc: number, body: XdrWriter): void;
  maySee?(uuid: string): boolean;
}

type Style = 'callback' | 'any' | 'legacy';

interface Registration {
  readonly id: number;
  readonly sink: EventSink;
  readonly style: Style;
  readonly eventId: number;
  /** Only this guest's events (callback style with a domain). */
  readonly uuid?: string;
}

interface Seen extends GuestState {
  /** Device aliases while it runs (device-events.ts), for device-added/removed. */
  readonly devices?: readonly string[];
}

/** How long an exit waits for the word of the verb that may have caused it. */
const EXIT_GRACE_MS = 250;

export class DomainEventHub {
  private readonly regs = new Map<number, Registration>();
  private nextId = 1;
  private seen: Map<string, Seen> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** An exit's look is scheduled (see changed()). */
  private graced = false;
  /** Network and storage pool events, told of every change this hub is told of. */
  readonly objects: ObjectEventHub;

  constructor(
    private readonly hv: Hypervisor,
    private readonly log: (line: string) => void,
    private readonly sweepMs = 3000,
  ) {
    this.objects = new ObjectEventHub(hv, log, sweepMs);
  }

  /** A callback-style (316) registration: its id, for the messages and the deregistration. */
  register(sink: EventSink, style: Style, eventId: number, uuid?: string): number {
    let held = 0;
    for (const r of this.regs.values()) if (r.sink === sink) held++;
    if (held >= MAX_REGISTRATIONS) throw new RangeError(`at most ${MAX_REGISTRATIONS} event registrations per client`);
    this.snapshot(); // the state events are told against: what the client could see when it registered
    const id = this.nextId++;
    this.regs.set(id, { id, sink, style, eventId, ...(uuid ? { uuid } : {}) });
    if (
      (eventId === dev.EVENT_ID_DEVICE_ADDED || eventId === dev.EVENT_ID_DEVICE_REMOVED) &&
      [...(this.seen?.values() ?? [])].every((x) => !x.devices)
    ) {
      this.seen = this.look();
    }
    this.timer ??= setInterval(() => this.changed({}), this.sweepMs).unref();
    return id;
  }

  /** Removes one registration of this client: by callback id, or the first of a style and event id. */
  deregister(sink: EventSink, match: { id?: number; style?: Style; eventId?: number }): boolean {
    for (const r of this.regs.values()) {
      if (r.sink !== sink) continue;
      if (match.id !== undefined ? r.id === match.id : r.style === match.style && r.eventId === match.eventId) {
        this.regs.delete(r.id);
        this.idle();
        return true;
      }
    }
    return false;
  }

  /** A client that left: every registration of it goes. */
  drop(sink: EventSink): void {
    this.objects.drop(sink);
    for (const r of [...this.regs.values()]) if (r.sink === sink) this.regs.delete(r.id);
    this.idle();
  }

  get registrations(): number {
    return this.regs.size;
  }

  close(): void {
    this.objects.close();
    clearInterval(this.timer);
    this.timer = undefined;
    this.regs.clear();
  }

  private idle(): void {
    if (this.regs.size > 0) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.seen = undefined; // nobody listens: nothing to compare with until someone does
  }

  /**
   * Something may have changed: compare with what was seen, and send each difference. A QEMU
   * exit alone is looked at EXIT_GRACE_MS later: when a destroy, shutdown or save caused it,
   * the verb's own word (which may come just after the monitor's) names the reason.
   */
  changed(cause: Cause): void {
    this.objects.changed();
    if (this.regs.size === 0) return;
    if (cause.exited && cause.what === undefined && !cause.graced) {
      if (this.graced) return; // one look, after the first exit's grace, covers both
      this.graced = true;
      setTimeout(() => {
        this.graced = false;
        this.changed({ ...cause, graced: true });
      }, EXIT_GRACE_MS).unref();
      return;
    }
    const before = this.seen ?? new Map<string, Seen>();
    let now: Map<string, Seen>;
    try {
      now = this.look();
    } catch (err) {
      this.log(`events: cannot read the guests: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    this.seen = now;
    this.send(before, now, cause);
  }

  private emitDevice(e: dev.DeviceEvent): void {
    dev.sendDeviceEvent(this.regs.values(), e);
  }

  private snapshot(): void {
    this.seen ??= this.look();
  }

  private look(): Map<string, Seen> {
    const out = new Map<string, Seen>();
    const defined = new Map(this.hv.store.listDefined().map((d) => [d.uuid, d]));
    const devices = dev.wantsDevices(this.regs.values());
    for (const g of this.hv.list()) {
      const d = defined.get(g.uuid);
      const s = stateOf({ ...(g.record ? { running: g.record } : {}), ...(d ? { defined: d } : {}) });
      if (s === undefined) continue;
      out.set(g.uuid, s.pid !== null && devices ? { ...s, devices: dev.deviceAliases(g.def) } : s);
    }
    return out;
  }

  /**
   * A CLI verb's word of the guests it touched (src/store/touched.ts): each one's state as the
   * verb left it replaces what was seen of it, and the differences are sent. Lines are told in
   * the order they came, so each verb's steps are sent even when serve reads them late; the
   * other guests wait for the next look.
   */
  reported(cause: Cause, reports: readonly TouchedReport[]): void {
    this.objects.changed();
    if (this.regs.size === 0) return;
    const before = this.seen ?? new Map<string, Seen>();
    const now = new Map(before);
    const devices = dev.wantsDevices(this.regs.values());
    for (const r of reports) {
      if (r.now === 'gone') now.delete(r.uuid);
      else now.set(r.uuid, devices ? this.withDevices(r.uuid, r.now) : r.now);
    }
    this.seen = now;
    this.send(before, now, cause);
  }

  /** A running guest's devices, read from its record while it is the QEMU the report names. */
  private withDevices(uuid: string, s: GuestState): Seen {
    if (s.pid === null) return s;
    const rec = this.hv.store.getRunning(uuid);
    return rec?.pid === s.pid ? { ...s, devices: dev.deviceAliases(parseDomainXml(rec.liveXml)) } : s;
  }

  private send(before: ReadonlyMap<string, Seen>, now: ReadonlyMap<string, Seen>, cause: Cause): void {
    for (const e of diff(before, now, cause)) this.emit(e);
    for (const [uuid, n] of now) {
      const b = before.get(uuid);
      if (!b?.devices || !n.devices || b.pid !== n.pid) continue;
      for (const e of dev.deviceDiff({ name: n.name, uuid, id: n.id }, b.devices, n.devices)) this.emitDevice(e);
    }
  }

  private emit(e: LifecycleEvent): void {
    const legacySent = new Set<EventSink>();
    for (const r of this.regs.values()) {
      if (r.eventId !== EVENT_ID_LIFECYCLE || (r.uuid !== undefined && r.uuid !== e.dom.uuid)) continue;
      if (r.sink.maySee && !r.sink.maySee(e.dom.uuid)) continue;
      const w = new XdrWriter(128);
      if (r.style === 'callback') {
        w.int(r.id);
        writeDomain(w, e.dom);
        w.int(e.event).int(e.detail);
        r.sink.send(PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE, w);
      } else if (!legacySent.has(r.sink)) {
        // One old-style message per client: its library fans it out to every local callback.
        legacySent.add(r.sink);
        writeDomain(w, e.dom);
        w.int(e.event).int(e.detail);
        r.sink.send(PROC_DOMAIN_EVENT_LIFECYCLE, w);
      }
    }
  }
}
