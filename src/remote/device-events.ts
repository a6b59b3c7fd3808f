/**
 * Device-added and device-removed events (issue 14): the hub (events.ts) remembers the device
 * aliases of each running guest (QEMU's device ids of its disks and NICs, as svirt names
 * them: `disk-vdb`, `net0`...) and this compares them: an alias that appeared is
 * DomainEventCallbackDeviceAdded, one that went DeviceRemoved (also in the old style, 311),
 * for the registrations of those event ids.
 */
import type { DomainDef } from '../domain/domain-def.js';
import { diskDeviceId } from '../qemu/argv.js';
import { nicIds } from '../qemu/netdev-args.js';
import { STRING_MAX, writeDomain, type WireDomain } from './protocol.js';
import { XdrWriter } from './xdr.js';

/** What device events need of a registration (events.ts's Registration). */
export interface DeviceRegistration {
  readonly id: number;
  readonly sink: { send(proc: number, body: XdrWriter): void; maySee?(uuid: string): boolean };
  readonly style: 'callback' | 'any' | 'legacy';
  readonly eventId: number;
  readonly uuid?: string;
}

/** VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, VIR_DOMAIN_EVENT_ID_DEVICE_ADDED */
export const EVENT_ID_DEVICE_REMOVED = 15;
export const EVENT_ID_DEVICE_ADDED = 19;
/** remote_protocol.x: the messages. */
export const PROC_DEVICE_REMOVED = 311;
export const PROC_CALLBACK_DEVICE_REMOVED = 333;
export const PROC_CALLBACK_DEVICE_ADDED = 354;

export interface DeviceEvent {
  readonly dom: WireDomain;
  readonly added: boolean;
  readonly alias: string;
}

/** The aliases of a running guest's hot-pluggable devices. */
export function deviceAliases(def: DomainDef): string[] {
  return [...def.disks.map(diskDeviceId), ...def.interfaces.flatMap((n) => (n.alias === undefined ? [] : [nicIds(n).device]))];
}

/** The device events that take `before` to `now` (both running, the same run). */
export function deviceDiff(dom: WireDomain, before: readonly string[], now: readonly string[]): DeviceEvent[] {
  const b = new Set(before);
  const n = new Set(now);
  return [
    ...before.filter((a) => !n.has(a)).map((alias) => ({ dom, added: false, alias })),
    ...now.filter((a) => !b.has(a)).map((alias) => ({ dom, added: true, alias })),
  ];
}

/** Sends one device event to each registration of its id (the old style has no device-added message). */
export function sendDeviceEvent(regs: Iterable<DeviceRegistration>, e: DeviceEvent): void {
  const want = e.added ? EVENT_ID_DEVICE_ADDED : EVENT_ID_DEVICE_REMOVED;
  for (const r of regs) {
    if (r.eventId !== want || (r.uuid !== undefined && r.uuid !== e.dom.uuid)) continue;
    if (r.sink.maySee && !r.sink.maySee(e.dom.uuid)) continue;
    if (r.style !== 'callback' && e.added) continue;
    const w = new XdrWriter(128);
    if (r.style === 'callback') w.int(r.id);
    writeDomain(w, e.dom);
    w.string(e.alias, STRING_MAX);
    r.sink.send(
      r.style === 'callback' ? (e.added ? PROC_CALLBACK_DEVICE_ADDED : PROC_CALLBACK_DEVICE_REMOVED) : PROC_DEVICE_REMOVED,
      w,
    );
  }
}

/** Running guests' definitions are parsed at each look only while someone registered for device events. */
export function wantsDevices(regs: Iterable<{ readonly eventId: number }>): boolean {
  for (const r of regs) if (r.eventId === EVENT_ID_DEVICE_ADDED || r.eventId === EVENT_ID_DEVICE_REMOVED) return true;
  return false;
}
