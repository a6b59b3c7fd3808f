/**
 * Test helpers for the SELinux driver's tests. The in-memory LabelMemory and
 * LabelReservations stand in for the SQLite store (src/store/store.ts) for pure logic
 * only: they follow its documented semantics (first original kept, users as a set,
 * INSERT OR IGNORE reservations) and claim nothing about the store itself.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DiskDef, DomainDef, SecLabelDef } from '../../src/domain/domain-def.js';
import type { DriverName, LabelMemory, LabelReservations, SecurityContext } from '../../src/security/driver.js';

export class MemoryLabelMemory implements LabelMemory {
  private readonly rows = new Map<string, { original: string; users: Set<string> }>();

  private key(driver: DriverName, path: string): string {
    return `${driver}\0${path}`;
  }

  remember(driver: DriverName, path: string, uuid: string, original: string): string {
    const k = this.key(driver, path);
    const row = this.rows.get(k) ?? { original, users: new Set<string>() };
    row.users.add(uuid);
    this.rows.set(k, row);
    return row.original;
  }

  recall(driver: DriverName, path: string): { original: string; users: string[] } | undefined {
    const row = this.rows.get(this.key(driver, path));
    return row === undefined ? undefined : { original: row.original, users: [...row.users] };
  }

  release(driver: DriverName, path: string, uuid: string): string | undefined {
    const row = this.rows.get(this.key(driver, path));
    if (row === undefined) return undefined;
    row.users.delete(uuid);
    return row.users.size === 0 ? row.original : undefined;
  }

  forget(driver: DriverName, path: string): void {
    const k = this.key(driver, path);
    if (this.rows.get(k)?.users.size === 0) this.rows.delete(k);
  }

  /** Every remembered path of a driver. */
  paths(driver: DriverName): string[] {
    const prefix = `${driver}\0`;
    return [...this.rows.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  }
}

export class MemoryReservations implements LabelReservations {
  private readonly held = new Map<string, string>();
  private readonly byGuest = new Map<string, { driver: DriverName; key: string }[]>();
  private readonly perDriver = new Map<DriverName, number>();

  tryReserve(driver: DriverName, label: string, uuid: string): boolean {
    const key = `${driver}\0${label}`;
    const h = this.held.get(key);
    if (h !== undefined) return h === uuid;
    this.held.set(key, uuid);
    const mine = this.byGuest.get(uuid) ?? [];
    mine.push({ driver, key });
    this.byGuest.set(uuid, mine);
    this.perDriver.set(driver, (this.perDriver.get(driver) ?? 0) + 1);
    return true;
  }

  holder(driver: DriverName, label: string): string | undefined {
    return this.held.get(`${driver}\0${label}`);
  }

  count(driver: DriverName): number {
    return this.perDriver.get(driver) ?? 0;
  }

  /** Drops every label of a guest (the store does this when a guest stops). */
  releaseGuest(uuid: string): void {
    for (const { driver, key } of this.byGuest.get(uuid) ?? []) {
      this.held.delete(key);
      this.perDriver.set(driver, (this.perDriver.get(driver) ?? 1) - 1);
    }
    this.byGuest.delete(uuid);
  }
}

/** Like the store, also lists what it holds (the allocator's scan uses that when it can). */
export class ListingMemoryReservations extends MemoryReservations {
  private readonly labels = new Map<string, Set<string>>();

  override tryReserve(driver: DriverName, label: string, uuid: string): boolean {
    const ok = super.tryReserve(driver, label, uuid);
    if (ok) this.labels.set(driver, (this.labels.get(driver) ?? new Set()).add(label));
    return ok;
  }

  reservedLabels(driver: DriverName): string[] {
    return [...(this.labels.get(driver) ?? [])].filter((l) => this.holder(driver, l) !== undefined);
  }
}

export function securityContext(
  memory: LabelMemory,
  reservations: LabelReservations,
  runtimeRoot = '/run/svirt-test',
  virtType: 'kvm' | 'qemu' = 'kvm',
): SecurityContext {
  return {
    runtimeDir: join(runtimeRoot, 'guest'),
    runtimeRoot,
    memory,
    reservations,
    virtType,
    emulator: '/usr/bin/qemu-system-x86_64',
  };
}

/** A UUID whose last 12 hex digits are `n`. */
export function uuidOf(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

export function domain(name: string, n: number, extra: Partial<DomainDef> = {}): DomainDef {
  return {
    type: 'kvm',
    name,
    uuid: uuidOf(n),
    memoryKiB: 131072,
    currentMemoryKiB: 131072,
    vcpus: 1,
    os: { type: 'hvm' },
    features: [],
    disks: [],
    chardevs: [],
    seclabels: [],
    interfaces: [],
    ignoredDevices: [],
    source: { kind: 'element', name: 'domain', attrs: [], children: [] },
    ...extra,
  };
}

export function withSeclabel(def: DomainDef, label: SecLabelDef): DomainDef {
  return { ...def, seclabels: [{ model: 'selinux', ...label }] };
}

export function disk(path: string, extra: Partial<DiskDef> = {}): DiskDef {
  return {
    type: 'file',
    device: 'disk',
    format: 'raw',
    path,
    target: { dev: 'vda', bus: 'virtio' },
    readonly: false,
    shareable: false,
    seclabels: [],
    ...extra,
  };
}

/** A temp dir removed by the returned cleanup. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 }) };
}
