/**
 * Helpers for the AppArmor driver's tests. MemoryLabelMemory and MemoryReservations stand in
 * for the SQLite store for pure logic only (label names, profile text); they follow its
 * documented semantics (a label held by another guest is refused) and claim nothing about it.
 */
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ChardevDef, DiskDef, DomainDef, SecLabelDef } from '../../src/domain/domain-def.js';
import type {
  DriverName,
  GuestResource,
  LabelMemory,
  LabelReservations,
  ResourceRole,
  SecurityContext,
} from '../../src/security/driver.js';

export class MemoryLabelMemory implements LabelMemory {
  private readonly rows = new Map<string, { original: string; users: Set<string> }>();

  remember(driver: DriverName, path: string, uuid: string, original: string): string {
    const key = `${driver}\0${path}`;
    const row = this.rows.get(key) ?? { original, users: new Set<string>() };
    row.users.add(uuid);
    this.rows.set(key, row);
    return row.original;
  }

  recall(driver: DriverName, path: string): { original: string; users: string[] } | undefined {
    const row = this.rows.get(`${driver}\0${path}`);
    return row === undefined ? undefined : { original: row.original, users: [...row.users] };
  }

  release(driver: DriverName, path: string, uuid: string): string | undefined {
    const row = this.rows.get(`${driver}\0${path}`);
    if (row === undefined) return undefined;
    row.users.delete(uuid);
    return row.users.size === 0 ? row.original : undefined;
  }

  forget(driver: DriverName, path: string): void {
    this.rows.delete(`${driver}\0${path}`);
  }
}

export class MemoryReservations implements LabelReservations {
  private readonly held = new Map<string, string>();

  tryReserve(driver: DriverName, label: string, uuid: string): boolean {
    const key = `${driver}\0${label}`;
    const holder = this.held.get(key);
    if (holder !== undefined) return holder === uuid;
    this.held.set(key, uuid);
    return true;
  }

  holder(driver: DriverName, label: string): string | undefined {
    return this.held.get(`${driver}\0${label}`);
  }

  count(driver: DriverName): number {
    return [...this.held.keys()].filter((k) => k.startsWith(`${driver}\0`)).length;
  }
}

export const UUID = '6f1c2a3e-4b5d-4e6f-8a9b-0c1d2e3f4a5b';

export interface DefInput {
  readonly name?: string;
  readonly uuid?: string;
  readonly seclabels?: readonly SecLabelDef[];
  readonly chardevs?: readonly ChardevDef[];
  readonly disks?: readonly DiskDef[];
}

/** A complete DomainDef, built by hand (every field is required by the type). */
export function makeDef(input: DefInput = {}): DomainDef {
  return {
    type: 'kvm',
    name: input.name ?? 'guest1',
    uuid: input.uuid ?? UUID,
    memoryKiB: 131072,
    currentMemoryKiB: 131072,
    vcpus: 1,
    os: { type: 'hvm', arch: 'x86_64', machine: 'pc' },
    features: [],
    disks: input.disks ?? [],
    chardevs: input.chardevs ?? [],
    seclabels: input.seclabels ?? [],
    interfaces: [],
    ignoredDevices: [],
    source: { kind: 'element', name: 'domain', attrs: [], children: [] },
  };
}

export function makeDisk(dev: string, path: string, options: { readonly?: boolean; device?: 'disk' | 'cdrom' } = {}): DiskDef {
  return {
    type: 'file',
    device: options.device ?? 'disk',
    format: 'qcow2',
    path,
    target: { dev, bus: 'virtio' },
    readonly: options.readonly ?? false,
    shareable: false,
    seclabels: [],
  };
}

export function makeResource(path: string, role: ResourceRole, device?: string): GuestResource {
  return device === undefined ? { path, role, seclabels: [] } : { path, role, seclabels: [], disk: makeDisk(device, path) };
}

export function makeCtx(root: string, overrides: { virtType?: 'kvm' | 'qemu'; emulator?: string } = {}): SecurityContext {
  return {
    runtimeDir: join(root, 'run', 'guest1'),
    runtimeRoot: join(root, 'run'),
    memory: new MemoryLabelMemory(),
    reservations: new MemoryReservations(),
    virtType: overrides.virtType ?? 'kvm',
    emulator: overrides.emulator ?? join(root, 'usr', 'bin', 'qemu-system-x86_64'),
  };
}

/** A fresh, symlink-free temp dir (realpath'd: /tmp may itself be a link elsewhere). */
export function tempRoot(prefix: string): string {
  return realpathSync(mkdtempSync(join(tmpdir(), prefix)));
}

export function removeTree(path: string): void {
  rmSync(path, { recursive: true, force: true });
}

/** One entry of a fixture's file tree, relative to the temp root. */
export type TreeEntry = { readonly file: string } | { readonly dir: string } | { readonly symlink: string; readonly to: string };

export function buildTree(root: string, entries: readonly TreeEntry[]): void {
  for (const e of entries) {
    if ('file' in e) {
      mkdirSync(dirname(join(root, e.file)), { recursive: true });
      writeFileSync(join(root, e.file), '');
    } else if ('dir' in e) {
      mkdirSync(join(root, e.dir), { recursive: true });
    } else {
      mkdirSync(dirname(join(root, e.symlink)), { recursive: true });
      symlinkSync(e.to, join(root, e.symlink));
    }
  }
}
