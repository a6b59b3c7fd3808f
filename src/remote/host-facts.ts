/**
 * Host facts for the remote protocol (procedures/host.ts): /proc/meminfo, /proc/stat, SMBIOS
 * from /sys/class/dmi/id, and the domain capabilities: what svirt's own parser and argv
 * builder accept (disk buses, video models, graphics, TPM, shares), the machine types and UEFI
 * builds the host's QEMU and firmware descriptors offer.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { esc, machineArch } from '../capabilities.js';
import { VIDEO_MODELS } from '../domain/display-def.js';
import type { Hypervisor } from '../lifecycle/hypervisor.js';
import { installedEmulators, kvmRuns } from '../qemu/emulator.js';
import { machinesOf } from '../qemu/machine-types.js';
import { readDescriptors } from '../qemu/firmware.js';
import { RemoteError, VirErr, VirFrom } from './errors.js';

/** QEMU's limit for x86 pc machines (q35 takes more; svirt reports the lower, true for both). */
export const MAX_VCPUS = 255;

/** /proc/meminfo in KiB. */
export function meminfo(): { total: bigint; free: bigint; buffers: bigint; cached: bigint } {
  const text = readFileSync('/proc/meminfo', 'utf8');
  const field = (name: string): bigint => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(text);
    if (!m?.[1]) throw new RemoteError(VirErr.INTERNAL_ERROR, VirFrom.QEMU, `/proc/meminfo has no ${name}`);
    return BigInt(m[1]);
  };
  return { total: field('MemTotal'), free: field('MemFree'), buffers: field('Buffers'), cached: field('Cached') };
}

/** One CPU's (or, with -1, all CPUs') times from /proc/stat, in nanoseconds; undefined for no such CPU. */
export function cpuTimes(cpu: number): { kernel: bigint; user: bigint; idle: bigint; iowait: bigint } | undefined {
  const name = cpu === -1 ? 'cpu' : `cpu${cpu}`;
  if (cpu < -1) return undefined;
  const line = readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name} `));
  if (!line) return undefined;
  // user nice system idle iowait irq softirq, in USER_HZ (100 on Linux)
  const v = line
    .trim()
    .split(/\s+/)
    .slice(1)
    .map((x) => BigInt(x) * 10_000_000n);
  const [user = 0n, nice = 0n, system = 0n, idle = 0n, iowait = 0n, irq = 0n, softirq = 0n] = v;
  return { kernel: system + irq + softirq, user: user + nice, idle, iowait };
}

function dmi(name: string): string | undefined {
  try {
    const v = readFileSync(join('/sys/class/dmi/id', name), 'utf8').trim();
    return v === '' ? undefined : v;
  } catch {
    return undefined; // absent, or root-only on this kernel
  }
}

/** libvirt's `<sysinfo type='smbios'>` from the kernel's DMI view and /proc/cpuinfo. */
export function sysinfoXml(): string {
  const section = (tag: string, entries: [string, string | undefined][]): string[] => {
    const have = entries.filter((e): e is [string, string] => e[1] !== undefined);
    if (have.length === 0) return [];
    return [`  <${tag}>`, ...have.map(([k, v]) => `    <entry name='${k}'>${esc(v)}</entry>`), `  </${tag}>`];
  };
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1];
  const vendor = /^vendor_id\s*:\s*(.+)$/m.exec(cpuinfo)?.[1];
  const sockets = new Set([...cpuinfo.matchAll(/^physical id\s*:\s*(\d+)$/gm)].map((m) => m[1])).size || 1;
  const processors: string[] = [];
  for (let i = 0; i < sockets; i++) {
    processors.push(
      ...section('processor', [
        ['socket_destination', String(i)],
        ['manufacturer', vendor],
        ['version', model],
      ]),
    );
  }
  return [
    "<sysinfo type='smbios'>",
    ...section('bios', [
      ['vendor', dmi('bios_vendor')],
      ['version', dmi('bios_version')],
      ['date', dmi('bios_date')],
      ['release', dmi('bios_release')],
    ]),
    ...section('system', [
      ['manufacturer', dmi('sys_vendor')],
      ['product', dmi('product_name')],
      ['version', dmi('product_version')],
      ['serial', dmi('product_serial')],
      ['uuid', dmi('product_uuid')],
      ['family', dmi('product_family')],
    ]),
    ...section('baseBoard', [
      ['manufacturer', dmi('board_vendor')],
      ['product', dmi('board_name')],
      ['version', dmi('board_version')],
    ]),
    ...processors,
    '</sysinfo>',
    '',
  ].join('\n');
}

function enumLines(name: string, values: readonly string[], indent: string): string[] {
  return [`${indent}<enum name='${name}'>`, ...values.map((v) => `${indent}  <value>${esc(v)}</value>`), `${indent}</enum>`];
}

/**
 * libvirt's `<domainCapabilities>` for one emulator, arch, machine and domain type (each
 * defaulted as libvirtd does: the host arch, its emulator, the emulator's default machine,
 * `kvm` when KVM runs else `qemu`). A value svirt cannot run is refused as libvirtd does.
 */
export function domainCapabilitiesXml(
  hv: Hypervisor,
  a: { emulator?: string | undefined; arch?: string | undefined; machine?: string | undefined; virttype?: string | undefined },
): string {
  const bad = (m: string): RemoteError => new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, m);
  const emulators = installedEmulators();
  const e =
    a.emulator !== undefined
      ? emulators.find((x) => x.path === a.emulator)
      : emulators.find((x) => x.arch === (a.arch ?? machineArch()));
  if (!e)
    throw bad(
      a.emulator !== undefined
        ? `emulator '${a.emulator}' is not an installed QEMU`
        : `no QEMU for architecture '${a.arch ?? machineArch()}'`,
    );
  if (a.arch !== undefined && a.arch !== e.arch) throw bad(`emulator '${e.path}' does not support architecture '${a.arch}'`);
  const kvm = existsSync('/dev/kvm') && kvmRuns(e.arch);
  const virttype = a.virttype ?? (kvm ? 'kvm' : 'qemu');
  if (virttype !== 'qemu' && !(virttype === 'kvm' && kvm))
    throw bad(`virttype '${virttype}' is not supported by '${e.path}' here`);
  const machines = machinesOf(e.path, statSync(e.path), join(hv.paths.stateDir, 'cache'));
  const m = a.machine === undefined ? machines.find((x) => x.isDefault) : machines.find((x) => x.name === a.machine);
  if (!m) throw bad(`the machine '${a.machine ?? '(default)'}' is not supported by emulator '${e.path}'`);
  const machine = m.canonical ?? m.name;
  const q35 = /q35/.test(machine);
  const uefi = readDescriptors().filter((d) => d.interfaces.includes('uefi') && d.targets.some((t) => t.architecture === e.arch));
  const loaders = [...new Set(uefi.map((d) => d.executable))];
  const buses = q35 ? ['virtio', 'sata', 'scsi', 'usb', 'fdc'] : ['virtio', 'ide', 'sata', 'scsi', 'usb', 'fdc'];
  return [
    '<domainCapabilities>',
    `  <path>${esc(e.path)}</path>`,
    `  <domain>${esc(virttype)}</domain>`,
    `  <machine>${esc(machine)}</machine>`,
    `  <arch>${esc(e.arch)}</arch>`,
    `  <vcpu max='${MAX_VCPUS}'/>`,
    "  <iothreads supported='no'/>",
    "  <os supported='yes'>",
    ...(loaders.length > 0 ? enumLines('firmware', ['efi'], '    ') : []),
    `    <loader supported='${loaders.length > 0 ? 'yes' : 'no'}'>`,
    ...loaders.map((l) => `      <value>${esc(l)}</value>`),
    ...enumLines('type', ['rom', 'pflash'], '      '),
    ...enumLines('readonly', ['yes', 'no'], '      '),
    ...enumLines('secure', uefi.some((d) => d.features.includes('requires-smm')) ? ['yes', 'no'] : ['no'], '      '),
    '    </loader>',
    '  </os>',
    '  <cpu>',
    "    <mode name='host-passthrough' supported='no'/>",
    "    <mode name='maximum' supported='no'/>",
    "    <mode name='host-model' supported='no'/>",
    "    <mode name='custom' supported='no'/>",
    '  </cpu>',
    "  <memoryBacking supported='no'/>",
    '  <devices>',
    "    <disk supported='yes'>",
    ...enumLines('diskDevice', ['disk', 'cdrom', 'floppy'], '      '),
    ...enumLines('bus', buses, '      '),
    '    </disk>',
    "    <graphics supported='yes'>",
    ...enumLines('type', ['vnc', 'spice'], '      '),
    '    </graphics>',
    "    <video supported='yes'>",
    ...enumLines(
      'modelType',
      VIDEO_MODELS.filter((v) => v !== 'none'),
      '      ',
    ),
    '    </video>',
    "    <hostdev supported='no'/>",
    "    <rng supported='yes'>",
    ...enumLines('model', ['virtio'], '      '),
    ...enumLines('backendModel', ['random', 'builtin'], '      '),
    '    </rng>',
    "    <filesystem supported='yes'>",
    ...enumLines('driverType', ['virtiofs'], '      '),
    '    </filesystem>',
    "    <tpm supported='yes'>",
    ...enumLines('model', ['tpm-tis', 'tpm-crb'], '      '),
    ...enumLines('backendModel', ['emulator'], '      '),
    '    </tpm>',
    '  </devices>',
    '  <features>',
    "    <gic supported='no'/>",
    "    <vmcoreinfo supported='no'/>",
    "    <genid supported='no'/>",
    "    <sev supported='no'/>",
    '  </features>',
    '</domainCapabilities>',
    '',
  ].join('\n');
}
