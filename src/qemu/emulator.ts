/**
 * Which QEMU binary a guest runs: `<emulator>` when given (a root-owned executable QEMU
 * binary for the guest's architecture), else `qemu-system-<arch>` in /usr/bin. The machine
 * types of each binary come from `-machine help`, run once (as nobody when svirt is root:
 * svirt never runs a binary unconfined with its own rights) and cached by the binary's
 * device, inode and mtime (machine-types.ts).
 */
import { closeSync, constants, existsSync, openSync, readdirSync, readSync, statSync, type Stats } from 'node:fs';
import { arch as nodeArch } from 'node:os';
import { basename, join } from 'node:path';
import type { DomainDef } from '../domain/domain-def.js';
import { SvirtError } from '../errors.js';
import { machinesOf, type MachineType } from './machine-types.js';

/** libvirt arch → QEMU's binary suffix and the Debian package that ships it. */
const ARCHES: Readonly<Record<string, { readonly qemu: string; readonly pkg: string; readonly wordsize: number }>> = {
  x86_64: { qemu: 'x86_64', pkg: 'qemu-system-x86', wordsize: 64 },
  i686: { qemu: 'i386', pkg: 'qemu-system-x86', wordsize: 32 },
  aarch64: { qemu: 'aarch64', pkg: 'qemu-system-arm', wordsize: 64 },
  armv7l: { qemu: 'arm', pkg: 'qemu-system-arm', wordsize: 32 },
  ppc64: { qemu: 'ppc64', pkg: 'qemu-system-ppc', wordsize: 64 },
  ppc64le: { qemu: 'ppc64', pkg: 'qemu-system-ppc', wordsize: 64 },
  s390x: { qemu: 's390x', pkg: 'qemu-system-s390x', wordsize: 64 },
  riscv64: { qemu: 'riscv64', pkg: 'qemu-system-misc', wordsize: 64 },
};

export const BIN_DIR = '/usr/bin';

/** The host's architecture in libvirt's names. */
export function hostArch(): string {
  const a = nodeArch();
  return a === 'x64' ? 'x86_64' : a === 'arm64' ? 'aarch64' : a === 'ia32' ? 'i686' : a;
}

/** The guest's architecture: `<type arch>`, else the host's (what libvirt fills in). */
export function guestArch(def: DomainDef): string {
  return def.os.arch ?? hostArch();
}

/** Whether KVM on this host can run `arch` (x86_64 hosts run i686 guests too). */
export function kvmRuns(arch: string): boolean {
  const host = hostArch();
  return arch === host || (host === 'x86_64' && arch === 'i686');
}

function archInfo(arch: string): { qemu: string; pkg: string; wordsize: number } {
  const a = ARCHES[arch];
  if (!a) {
    throw new SvirtError(
      'SVIRT_ERR_XML_UNSUPPORTED',
      `architecture '${arch}' is not supported (svirt knows ${Object.keys(ARCHES).join(', ')})`,
    );
  }
  return a;
}

/** The binary path a guest runs, without checking it (stop and repair paths use what start checked). */
export function emulatorPath(def: DomainDef): string {
  return def.emulator ?? join(BIN_DIR, `qemu-system-${ARCHES[guestArch(def)]?.qemu ?? guestArch(def)}`);
}

/** The libvirt arch of a `qemu-system-X` binary name, or undefined. */
export function archOfBinary(path: string): string | undefined {
  const m = /^qemu-system-([a-z0-9_]+)$/.exec(basename(path));
  if (!m) return undefined;
  const qemu = m[1];
  return Object.entries(ARCHES).find(([, v]) => v.qemu === qemu)?.[0];
}

export interface EmulatorInfo {
  readonly path: string;
  readonly arch: string;
  readonly wordsize: number;
  readonly machines: readonly MachineType[];
}

function checkBinary(path: string, st: Stats): void {
  if (!st.isFile() || (st.mode & 0o111) === 0) {
    throw new SvirtError('SVIRT_ERR_XML_INVALID', `emulator "${path}" is not an executable file`, { details: { path } });
  }
  if (st.uid !== 0 || (st.mode & 0o022) !== 0) {
    throw new SvirtError(
      'SVIRT_ERR_PATH_INVALID',
      `emulator "${path}" must belong to root and be writable by root alone (it is uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)})`,
      { details: { path } },
    );
  }
}

/** Whether a file starts with `#!` (Debian's qemu-system-i386 is a shell wrapper around /usr/libexec's binary). */
function isScript(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const b = Buffer.alloc(2);
    return readSync(fd, b, 0, 2, 0) === 2 && b.toString('latin1') === '#!';
  } catch {
    return false; // unreadable: the stat and exec checks report it
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * The binary itself where a path is a wrapper script: confinement allows executing exactly
 * the emulator, never a shell, so Debian's /usr/bin/qemu-system-i386 (a script that execs
 * /usr/libexec/qemu-system-i386) is replaced by what it runs. Any other script is refused.
 */
function realBinary(path: string): string {
  if (!isScript(path)) return path;
  const twin = join('/usr/libexec', basename(path));
  if (existsSync(twin) && !isScript(twin)) return twin;
  throw new SvirtError('SVIRT_ERR_XML_INVALID', `emulator "${path}" is a script; svirt runs a QEMU binary directly`, {
    details: { path },
  });
}

/**
 * The binary a definition runs, checked: installed (else the Debian package to install is
 * named), a root-owned executable, a QEMU for the guest's arch, and one that has the machine
 * type asked for.
 */
export function resolveEmulator(def: DomainDef, cacheDir: string | undefined): EmulatorInfo {
  const arch = guestArch(def);
  const info = archInfo(arch);
  const named = emulatorPath(def);
  let st: Stats;
  let path = named;
  try {
    statSync(named);
    path = realBinary(named);
    st = statSync(path);
  } catch (err) {
    if (err instanceof SvirtError) throw err;
    const why =
      def.emulator === undefined ? `qemu-system-${info.qemu} is not installed (Debian package ${info.pkg})` : 'it does not exist';
    throw new SvirtError('SVIRT_ERR_XML_UNSUPPORTED', `domain '${def.name}' needs the ${arch} emulator "${named}": ${why}`, {
      details: { path, arch },
    });
  }
  checkBinary(path, st);
  const binArch = archOfBinary(path);
  if (binArch === undefined) {
    throw new SvirtError('SVIRT_ERR_XML_INVALID', `domain '${def.name}': emulator "${path}" is not a qemu-system-<arch> binary`, {
      details: { path, arch },
    });
  }
  if (ARCHES[binArch]?.qemu !== info.qemu) {
    throw new SvirtError(
      'SVIRT_ERR_XML_INVALID',
      `domain '${def.name}': emulator "${path}" runs ${binArch} guests, not ${arch}`,
      {
        details: { path, arch },
      },
    );
  }
  const machines = machinesOf(path, st, cacheDir);
  const machine = def.os.machine;
  if (machine !== undefined && !machines.some((m) => m.name === machine)) {
    throw new SvirtError(
      'SVIRT_ERR_XML_UNSUPPORTED',
      `domain '${def.name}': machine type '${machine}' is not one of ${basename(path)}'s (svirt capabilities lists them)`,
      { details: { path, machine } },
    );
  }
  return { path, arch, wordsize: info.wordsize, machines };
}

/** The canonical name of a machine (`q35` → `pc-q35-7.2`; no machine → the binary's default). */
export function canonicalMachine(info: EmulatorInfo, machine: string | undefined): string | undefined {
  const m = machine === undefined ? info.machines.find((x) => x.isDefault) : info.machines.find((x) => x.name === machine);
  if (!m) return machine;
  return m.canonical ?? m.name;
}

/** Every installed `qemu-system-<arch>` of a known arch, for `capabilities`. */
export function installedEmulators(): { path: string; arch: string }[] {
  let names: string[];
  try {
    names = readdirSync(BIN_DIR);
  } catch {
    return [];
  }
  return names
    .map((n) => ({ path: join(BIN_DIR, n), arch: archOfBinary(n) }))
    .filter((e): e is { path: string; arch: string } => e.arch !== undefined)
    .sort((a, b) => a.arch.localeCompare(b.arch));
}

export function wordsizeOf(arch: string): number {
  return ARCHES[arch]?.wordsize ?? 64;
}
