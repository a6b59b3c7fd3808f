/**
 * Firmware auto-selection for `<os firmware='efi'>` from QEMU's firmware descriptors
 * (`/usr/share/qemu/firmware/*.json`, the QEMU firmware.json schema; Debian's `ovmf` ships
 * them), as libvirt does: descriptors in file-name order (a name in /etc/qemu/firmware
 * overrides the same name in /usr/share), the first whose interface, architecture, machine
 * and features fit wins.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FirmwareDef } from '../domain/domain-def.js';
import { SvirtError } from '../errors.js';
import { readCapped } from './read-capped.js';

export const FIRMWARE_DIRS: readonly string[] = ['/usr/share/qemu/firmware', '/etc/qemu/firmware'];

export interface FirmwareDescriptor {
  readonly file: string;
  readonly interfaces: readonly string[];
  readonly executable: string;
  readonly template?: string;
  readonly targets: readonly { readonly architecture: string; readonly machines: readonly string[] }[];
  readonly features: readonly string[];
}

export interface FirmwareChoice {
  readonly loader: string;
  readonly template?: string;
  /** The build needs SMM and a secure flash (Secure Boot). */
  readonly secure: boolean;
  readonly descriptor: string;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** One descriptor, or undefined when it is not a flash-mapped one svirt can use (memory/kernel mappings, stateless). */
export function parseDescriptor(file: string, text: string): FirmwareDescriptor | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined; // a broken descriptor is skipped, as QEMU's own tools do
  }
  if (typeof doc !== 'object' || doc === null) return undefined;
  const d = doc as Record<string, unknown>;
  const mapping = d['mapping'] as Record<string, unknown> | undefined;
  if (!mapping || mapping['device'] !== 'flash') return undefined;
  const exe = mapping['executable'] as Record<string, unknown> | undefined;
  const executable = str(exe?.['filename']);
  if (!executable || (exe?.['format'] !== undefined && exe['format'] !== 'raw')) return undefined;
  const tmpl = mapping['nvram-template'] as Record<string, unknown> | undefined;
  const template = str(tmpl?.['filename']);
  const targets = Array.isArray(d['targets'])
    ? (d['targets'] as unknown[]).flatMap((t) => {
        const o = t as Record<string, unknown>;
        const architecture = str(o['architecture']);
        const machines = Array.isArray(o['machines']) ? (o['machines'] as unknown[]).filter((m) => typeof m === 'string') : [];
        return architecture ? [{ architecture, machines: machines as string[] }] : [];
      })
    : [];
  const list = (k: string): string[] =>
    (Array.isArray(d[k]) ? (d[k] as unknown[]).filter((x) => typeof x === 'string') : []) as string[];
  return {
    file,
    interfaces: list('interface-types'),
    executable,
    ...(template ? { template } : {}),
    targets,
    features: list('features'),
  };
}

/** Every descriptor of the host, in the order libvirt considers them. */
export function readDescriptors(dirs: readonly string[] = FIRMWARE_DIRS): FirmwareDescriptor[] {
  const byName = new Map<string, string>();
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue; // no such directory: no descriptors there
    }
    for (const n of names) if (n.endsWith('.json')) byName.set(n, join(dir, n));
  }
  const out: FirmwareDescriptor[] = [];
  for (const name of [...byName.keys()].sort()) {
    const file = byName.get(name) as string;
    const text = readCapped(file, 64 * 1024);
    const d = text === undefined ? undefined : parseDescriptor(file, text);
    if (d) out.push(d);
  }
  return out;
}

/** QEMU's glob patterns of machine names (`pc-q35-*`). */
function machineMatches(pattern: string, machine: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
  return re.test(machine);
}

/**
 * The firmware for an `<os firmware='efi'>` guest of this arch and (canonical) machine, with the
 * wanted features; an error naming what was asked when nothing fits.
 */
export function selectFirmware(
  fw: FirmwareDef,
  arch: string,
  machine: string,
  descriptors: readonly FirmwareDescriptor[],
): FirmwareChoice {
  const want = fw.features.filter((f) => f.enabled).map((f) => f.name);
  const refuse = fw.features.filter((f) => !f.enabled).map((f) => f.name);
  for (const d of descriptors) {
    if (!d.interfaces.includes('uefi')) continue;
    if (!d.targets.some((t) => t.architecture === arch && t.machines.some((m) => machineMatches(m, machine)))) continue;
    if (want.some((f) => !d.features.includes(f)) || refuse.some((f) => d.features.includes(f))) continue;
    const secure = d.features.includes('requires-smm');
    return { loader: d.executable, ...(d.template ? { template: d.template } : {}), secure, descriptor: d.file };
  }
  const asked = [...want.map((f) => `+${f}`), ...refuse.map((f) => `-${f}`)].join(' ');
  throw new SvirtError(
    'SVIRT_ERR_XML_UNSUPPORTED',
    `no UEFI firmware for ${arch} machine '${machine}'${asked ? ` with ${asked}` : ''} among the firmware descriptors ` +
      `(${descriptors.length} found in ${FIRMWARE_DIRS.join(', ')}; Debian package ovmf)`,
  );
}

/** The template of the descriptor whose executable is `loader` (a pflash loader given without `<nvram template>`). */
export function templateFor(loader: string, descriptors: readonly FirmwareDescriptor[]): string | undefined {
  return descriptors.find((d) => d.executable === loader && d.template !== undefined)?.template;
}
