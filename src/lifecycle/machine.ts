/**
 * The machine half of define and start: the emulator checked for the guest's arch and machine,
 * libvirt's implicit devices and PCI addresses, UEFI firmware chosen from QEMU's descriptors,
 * a per-guest nvram made from its template, and the fds QEMU gets for firmware and `<rng>`.
 */
import { closeSync, constants, fsyncSync, lstatSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { DomainDef } from '../domain/domain-def.js';
import { completeMachine } from '../domain/machine-defaults.js';
import { SvirtError, errnoOf } from '../errors.js';
import { openHandle, unlinkBeneath, type FileHandle } from '../host/file-handle.js';
import type { FdSetEntry } from '../qemu/argv.js';
import type { FirmwareFds } from '../qemu/argv-machine.js';
import { canonicalMachine, emulatorPath, guestArch, resolveEmulator, type EmulatorInfo } from '../qemu/emulator.js';
import { readDescriptors, selectFirmware, templateFor } from '../qemu/firmware.js';
import type { FdLayout } from '../qemu/fd-layout.js';
import type { GuestResource } from '../security/driver.js';
import { resolvePath } from '../security/resources.js';
import type { OpenFiles } from './files.js';

/** An nvram template larger than this is refused (OVMF's are 128 KiB and 528 KiB). */
export const NVRAM_TEMPLATE_MAX = 64 * 1024 * 1024;

/** Where svirt keeps the nvram of guests that name none (libvirt: /var/lib/libvirt/qemu/nvram). */
export function nvramDir(stateDir: string): string {
  return join(stateDir, 'nvram');
}

/** Where the emulators' machine types are cached (emulator.ts). */
export function cacheDir(stateDir: string): string {
  return join(stateDir, 'cache');
}

/**
 * The definition as define stores it and start runs it: emulator checked, implicit devices
 * and addresses, firmware and nvram paths filled in. Idempotent.
 */
export function prepareDefinition(stateDir: string, def: DomainDef): DomainDef {
  return prepare(stateDir, def, cacheDir(stateDir)).def;
}

function prepare(stateDir: string, def: DomainDef, cache: string | undefined): { def: DomainDef; descriptor?: string } {
  const emulator = resolveEmulator(def, cache);
  // A wrapper script's binary is named in the definition, so every driver's rule follows it.
  const withEmulator = emulator.path === emulatorPath(def) ? def : { ...def, emulator: emulator.path };
  return withFirmware(stateDir, completeMachine(withEmulator), emulator);
}

/** The firmware a dry run shows: what start gives QEMU, and where it came from. */
export interface FirmwarePreview {
  readonly loader: string;
  readonly secure: boolean;
  /** The descriptor that chose it (`<os firmware='efi'>`), or that names the given loader. */
  readonly descriptor?: string;
  /** Chosen now from the descriptors (a definition read from a file), rather than at define. */
  readonly chosenNow: boolean;
  readonly nvram?: string;
  readonly template?: string;
  /** Whether the nvram exists (else start makes it from the template). */
  readonly nvramExists: boolean;
}

/**
 * What `prepareDefinition` makes of a definition, for a dry run (`svirt profile`): nothing is
 * written (no machine-type cache, no nvram), and the firmware pick is described.
 */
export function previewDefinition(stateDir: string, given: DomainDef): { def: DomainDef; firmware?: FirmwarePreview } {
  const { def, descriptor } = prepare(stateDir, given, undefined);
  const loader = def.os.loader;
  if (loader?.type !== 'pflash') return { def };
  const named = descriptor ?? readDescriptors().find((d) => d.executable === loader.path)?.file;
  const nvram = def.os.nvram;
  let nvramExists = false;
  if (nvram) {
    try {
      lstatSync(nvram.path);
      nvramExists = true;
    } catch {
      nvramExists = false; // start makes it from its template
    }
  }
  return {
    def,
    firmware: {
      loader: loader.path,
      secure: loader.secure === true,
      ...(named === undefined ? {} : { descriptor: named }),
      chosenNow: descriptor !== undefined,
      ...(nvram ? { nvram: nvram.path } : {}),
      ...(nvram?.template === undefined ? {} : { template: nvram.template }),
      nvramExists,
    },
  };
}

/** `<os firmware='efi'>` → loader + nvram from the descriptors; a pflash loader without `<nvram>` gets one. */
function withFirmware(stateDir: string, def: DomainDef, emulator: EmulatorInfo): { def: DomainDef; descriptor?: string } {
  const os = def.os;
  const needsChoice = os.firmware?.kind === 'efi' && os.loader === undefined;
  const pflash = os.loader?.type === 'pflash' || needsChoice;
  if (!pflash) return { def };
  if (os.loader && !os.loader.readonly) {
    // A firmware file shared by every guest would be the guest's to change: vars go in a per-guest nvram.
    throw new SvirtError(
      'SVIRT_ERR_XML_UNSUPPORTED',
      `domain '${def.name}': a pflash <loader> must be readonly='yes' (its variables live in <nvram>)`,
    );
  }
  if (os.loader && os.nvram?.template !== undefined) return { def };
  const descriptors = readDescriptors();
  let loader = os.loader;
  let template = os.nvram?.template;
  let descriptor: string | undefined;
  if (needsChoice && os.firmware) {
    const machine = canonicalMachine(emulator, os.machine) ?? 'pc';
    const choice = selectFirmware(os.firmware, guestArch(def), machine, descriptors);
    loader = { path: choice.loader, readonly: true, type: 'pflash', ...(choice.secure ? { secure: true } : {}) };
    template = choice.template;
    descriptor = choice.descriptor;
  } else if (loader) {
    template ??= templateFor(loader.path, descriptors);
  }
  if (!loader) return { def };
  const path = os.nvram?.path ?? join(nvramDir(stateDir), `${def.name}_VARS.fd`);
  const nvram = template === undefined ? { path } : { path, template };
  const out = { ...def, os: { ...os, loader, nvram } };
  return descriptor === undefined ? { def: out } : { def: out, descriptor };
}

/**
 * Makes the guest's nvram from its template when it does not exist yet: the template opened
 * once (no symlink after resolution, a regular file, at most NVRAM_TEMPLATE_MAX bytes), the
 * nvram created O_EXCL|O_NOFOLLOW (root's, 0600) inside its opened directory and filled
 * through that fd. Returns a function that removes what it made (a start that fails leaves
 * nothing behind), or undefined when the nvram was already there.
 */
export function ensureNvram(def: DomainDef, stateDir: string): (() => void) | undefined {
  const nvram = def.os.nvram;
  if (def.os.loader?.type !== 'pflash' || !nvram) return undefined;
  if (dirname(nvram.path) === nvramDir(stateDir)) mkdirSync(nvramDir(stateDir), { recursive: true, mode: 0o700 });
  const dir = openHandle(dirname(nvram.path), `create the nvram "${nvram.path}" in`);
  let out: number | undefined;
  let tmpl: FileHandle | undefined;
  let made = false;
  try {
    if (dir.kind !== 'dir')
      throw new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot create "${nvram.path}": its parent is not a directory`);
    try {
      out = openSync(
        `${dir.procPath}/${basename(nvram.path)}`,
        constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_WRONLY,
        0o600,
      );
      made = true;
    } catch (err) {
      if (errnoOf(err) === 'EEXIST') return undefined; // the guest's nvram: start opens and checks it like any resource
      throw new SvirtError('SVIRT_ERR_HOST', `cannot create the nvram "${nvram.path}": ${errnoOf(err) ?? String(err)}`, {
        cause: err,
      });
    }
    if (nvram.template === undefined) {
      throw new SvirtError(
        'SVIRT_ERR_XML_INVALID',
        `domain '${def.name}': the nvram "${nvram.path}" does not exist and no <nvram template=...> says what to make it from`,
      );
    }
    tmpl = openHandle(resolvePath(nvram.template), 'read the nvram template');
    if (tmpl.kind !== 'file')
      throw new SvirtError('SVIRT_ERR_PATH_INVALID', `the nvram template "${nvram.template}" is not a regular file`);
    if (tmpl.stats.size > NVRAM_TEMPLATE_MAX) {
      throw new SvirtError(
        'SVIRT_ERR_PATH_INVALID',
        `the nvram template "${nvram.template}" is larger than ${NVRAM_TEMPLATE_MAX} bytes`,
      );
    }
    copyFd(tmpl.reopen(constants.O_RDONLY), out, tmpl.stats.size);
    fsyncSync(out);
  } catch (err) {
    if (made) unlinkBeneath(nvram.path, 'remove a half-made nvram in', (st) => st.isFile());
    throw err;
  } finally {
    if (out !== undefined) closeSync(out);
    tmpl?.close();
    dir.close();
  }
  return () => unlinkBeneath(nvram.path, 'remove the nvram made for a failed start in', (st) => st.isFile());
}

/** Copies exactly `size` bytes (what fstat said; a file that grows is cut there) and closes `from`. */
function copyFd(from: number, to: number, size: number): void {
  const buf = Buffer.alloc(64 * 1024);
  let done = 0;
  try {
    while (done < size) {
      const n = readSync(from, buf, 0, Math.min(buf.length, size - done), done);
      if (n === 0) break;
      writeSync(to, buf, 0, n);
      done += n;
    }
  } finally {
    closeSync(from);
  }
}

/** The major:minor of the host random devices a `<rng>` may read. */
const RANDOM_DEVICES: Readonly<Record<string, number>> = { '/dev/random': (1 << 8) | 8, '/dev/urandom': (1 << 8) | 9 };

function rdevKey(rdev: number): number {
  // Linux new_encode_dev: major in bits 8-19, minor in 0-7 and 20-31.
  return (((rdev >> 8) & 0xfff) << 8) | (rdev & 0xff);
}

/**
 * The fds QEMU gets for the machine's own files, in fdsets numbered after `usedSets`: the
 * host random device of each `<rng>` (opened by svirt and checked to be that character
 * device; nothing is labelled) and the pflash code and vars reopened from their checked
 * handles (code read-only, vars read-write).
 */
export function machineFds(
  def: DomainDef,
  resources: readonly GuestResource[],
  files: OpenFiles,
  layout: FdLayout,
  usedSets: number,
): { rngFds: Map<number, FdSetEntry>; firmwareFds?: FirmwareFds } {
  let set = usedSets;
  const rngFds = new Map<number, FdSetEntry>();
  (def.rngs ?? []).forEach((r, i) => {
    if (r.backend.model !== 'random') return;
    const path = r.backend.path;
    const h = files.handle(openHandle(path, 'open the rng source'));
    if (h.kind !== 'char' || rdevKey(h.stats.rdev) !== RANDOM_DEVICES[path]) {
      throw new SvirtError(
        'SVIRT_ERR_PATH_INVALID',
        `cannot use "${path}" as an rng source: it is not the kernel's random device`,
      );
    }
    const fd = files.fd(openSync(h.procPath, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY));
    rngFds.set(i, { fd: layout.add(fd), set: ++set, path, readonly: true });
  });
  if (def.os.loader?.type !== 'pflash') return { rngFds };
  const reopen = (role: 'loader' | 'nvram', flags: number): FdSetEntry | undefined => {
    const r = resources.find((x) => x.role === role);
    if (!r) return undefined;
    if (!r.handle) throw new SvirtError('SVIRT_ERR_INTERNAL', `the ${role} "${r.path}" was not opened`);
    return { fd: layout.add(files.fd(r.handle.reopen(flags))), set: ++set, path: r.path, readonly: flags === constants.O_RDONLY };
  };
  const code = reopen('loader', constants.O_RDONLY);
  if (!code) throw new SvirtError('SVIRT_ERR_INTERNAL', `the firmware of '${def.name}' was not opened`);
  const vars = reopen('nvram', constants.O_RDWR);
  return { rngFds, firmwareFds: vars ? { code, vars } : { code } };
}

/** What `undefine` does with a guest's nvram: virsh's --nvram (remove) and --keep-nvram (keep). */
export type NvramUndefine = 'remove' | 'keep';

/**
 * virsh's rule: a guest whose nvram file exists is undefined only with --nvram (the file is
 * removed: a regular file only, never a firmware descriptor's own image) or --keep-nvram.
 * Runs before the definition is removed, so a refusal changes nothing.
 */
export function undefineNvram(def: DomainDef, mode: NvramUndefine | undefined): void {
  const nvram = def.os.loader?.type === 'pflash' ? def.os.nvram : undefined;
  if (!nvram) return;
  try {
    lstatSync(nvram.path);
  } catch {
    return; // no nvram file: nothing to keep or remove
  }
  if (mode === undefined) {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `cannot undefine domain '${def.name}' with nvram "${nvram.path}": use --nvram to remove it or --keep-nvram to keep it`,
    );
  }
  if (mode === 'keep') return;
  const shipped = new Set(readDescriptors().flatMap((d) => [d.executable, ...(d.template ? [d.template] : [])]));
  if (shipped.has(nvram.path)) {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `refusing to remove "${nvram.path}": it is a firmware image, not a guest's nvram`,
    );
  }
  unlinkBeneath(nvram.path, 'remove the nvram in', (st) => st.isFile());
}
