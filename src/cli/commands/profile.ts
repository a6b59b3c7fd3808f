import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { DomainDef } from '../../domain/domain-def.js';
import { parseDomainXml } from '../../domain/index.js';
import { SvirtError } from '../../errors.js';
import type { StatePaths } from '../../host/paths.js';
import { noDomain } from '../../lifecycle/guest.js';
import { helperDevicesDryRun } from '../../lifecycle/helper-devices.js';
import { Hypervisor } from '../../lifecycle/hypervisor.js';
import { previewDisplayPorts } from '../../lifecycle/display-ports.js';
import { previewDefinition, type FirmwarePreview } from '../../lifecycle/machine.js';
import { nicDryRun } from '../../lifecycle/nics.js';
import { ptyDryRun } from '../../lifecycle/pty-relay.js';
import { guestResources, resolveResources } from '../../security/resources.js';
import { buildStack, parseStackSpec, stackFromNames } from '../../security/stack.js';
import type { GuestResource, SecurityContext, LabelMemory, LabelReservations } from '../../security/driver.js';
import { Store } from '../../store/store.js';
import { emulatorPath, guestArch, kvmRuns } from '../../qemu/emulator.js';
import { arg, type ParsedArgs } from '../args.js';
import { output, stackSpec, statePaths } from '../context.js';
import { readXmlFile } from './read-xml.js';

/**
 * The stored definition of NAME, from a store that already exists: a dry run creates no
 * state dir and no store (the store, when there, is opened and closed again).
 */
async function storedDef(paths: StatePaths, name: string): Promise<DomainDef> {
  if (!existsSync(join(paths.stateDir, 'svirt.db'))) throw noDomain(name);
  const store = Store.open(paths.stateDir);
  try {
    const config = { env: process.env };
    // Only the lookup is used: the stack is a placeholder that probes nothing.
    return new Hypervisor({ paths, store, manager: await stackFromNames(['none'], config), config }).inactiveDef(name);
  } finally {
    store.close();
  }
}

/**
 * Dry run: what each driver would apply to a guest, touching nothing (no state dir, no
 * store, no reservation, no label, no profile load). Labels shown are examples where the
 * real one is allocated at start.
 */
export async function run(args: ParsedArgs): Promise<number> {
  if (args.positional.length === 0) return (await import('./profile-manager.js')).run(args);
  const what = arg(args, 0, 'FILE or NAME');
  const driverOpt = args.options.get('driver');
  // A dry run needs no kernel support: named drivers are built without probing.
  const names = driverOpt ? parseStackSpec(driverOpt) : undefined;
  if (names === 'auto') throw new SvirtError('SVIRT_ERR_USAGE', 'profile --driver takes driver names, not auto');
  const paths = statePaths(args);
  const given = existsSync(what) ? parseDomainXml(await readXmlFile(what)) : await storedDef(paths, what);
  // What start would run: implicit devices, addresses, the firmware pick, display ports (nothing reserved or written).
  const prepared = previewDefinition(paths.stateDir, given);
  const runtimeDir = join(paths.runtimeRoot, given.uuid);
  const ports = await previewDisplayPorts(prepared.def, runtimeDir, portHolders(paths));
  const def = ports.def;
  // The modes that need no kernel support: a dry run only generates text.
  const dryEnv = { ...process.env, SVIRT_APPARMOR_MODE: 'compile-only', SVIRT_SELINUX_MODE: 'userspace-test' };
  const manager = names ? await stackFromNames(names, { env: dryEnv }) : await buildStack(stackSpec(args), { env: process.env });
  const scratch = dryRunStore();
  // What LifecycleEnv.context() gives a start, with reservations and memory that end with this run.
  const ctx: SecurityContext = {
    runtimeDir,
    runtimeRoot: paths.runtimeRoot,
    memory: scratch,
    reservations: scratch,
    virtType: def.type === 'kvm' && existsSync('/dev/kvm') && kvmRuns(guestArch(def)) ? 'kvm' : 'qemu',
    emulator: emulatorPath(def),
    warn: (m) => void process.stderr.write(`warning: ${m}\n`),
  };
  const live = manager.genLabels(def, ctx);
  // The runtime dir does not exist before the first start: it is shown as it will be.
  const [runtime, ...files] = guestResources(live, runtimeDir);
  const devices = helperDevicesDryRun(paths.stateDir, live);
  // An nvram whose directory start makes (svirt's nvram dir) is shown where it will be.
  const later = (r: GuestResource): boolean => r.role === 'nvram' && !existsSync(dirname(r.path));
  const resources = [
    ...(runtime ? [runtime] : []),
    ...resolveResources(files.filter((r) => !later(r))),
    ...files.filter(later),
    ...devices.resources,
  ];
  const sections = [...manager.dryRun(live, resources, ctx), ...(await nicDryRun(manager, live, ctx))];
  for (const h of devices.helpers) {
    for (const s of await manager.dryRunHelper(live, h, ctx))
      sections.push({ driver: s.driver, text: `helper ${h.kind} ${h.id}:\n${s.text}` });
  }
  sections.push({
    driver: 'cgroup',
    text: (await import('../../lifecycle/cgroup/describe.js')).cgroupDryRun(live, resources, manager.names),
  });
  const fds = [...machineFdNotes(live), ...ptyDryRun(live, manager.names)];
  const firmware = prepared.firmware ? firmwareNotes(prepared.firmware) : [];
  const displays = ports.displays.map((d) => `${d.type}: ${d.listen} (${d.note})`);
  const parts = [
    sections.map((s) => `# ${s.driver}\n${s.text}`).join('\n\n'),
    ...(firmware.length > 0 ? [`# firmware\n${firmware.join('\n')}`] : []),
    ...(displays.length > 0 ? [`# displays\n${displays.join('\n')}`] : []),
    ...(fds.length > 0 ? [`# opened by svirt, given to QEMU as fds\n${fds.join('\n')}`] : []),
  ];
  output(args, parts.join('\n\n'), {
    name: def.name,
    uuid: def.uuid,
    drivers: sections,
    ...(prepared.firmware ? { firmware: prepared.firmware } : {}),
    displays: ports.displays,
    fds,
  });
  return 0;
}

/**
 * Who holds each display port, read from the store when there is one (a dry run creates
 * none); a store svirt cannot open here counts as no holders (start checks again).
 */
function portHolders(paths: StatePaths): (port: number) => string | undefined {
  if (!existsSync(join(paths.stateDir, 'svirt.db'))) return () => undefined;
  let held: Map<number, string>;
  try {
    const store = Store.open(paths.stateDir);
    try {
      held = store.heldPorts();
    } finally {
      store.close();
    }
  } catch {
    return () => undefined; // unreadable here (another user's store): start decides
  }
  return (port) => held.get(port);
}

/** The firmware start gives QEMU, and where the choice came from. */
function firmwareNotes(f: FirmwarePreview): string[] {
  const from =
    f.descriptor === undefined
      ? 'a loader the definition names (no descriptor lists it)'
      : `${f.chosenNow ? "<os firmware='efi'> picks" : 'chosen at define from'} ${f.descriptor}`;
  const out = [`firmware: ${from}`, `code: ${f.loader} (read-only${f.secure ? '; Secure Boot: smm=on, secure flash' : ''})`];
  if (f.nvram !== undefined) {
    const made = f.nvramExists
      ? "exists: the guest's own"
      : f.template === undefined
        ? 'missing and no template: start would fail'
        : `made at first start from ${f.template}`;
    out.push(`vars: ${f.nvram} (read-write; ${made})`);
  }
  return out;
}

/** Reservations and memory that live only for this dry run: nothing reaches the store. */
function dryRunStore(): LabelMemory & LabelReservations {
  const reserved = new Map<string, string>();
  const remembered = new Map<string, { original: string; users: Set<string> }>();
  return {
    tryReserve: (driver, label, uuid) => {
      const k = `${driver}\0${label}`;
      if (reserved.has(k) && reserved.get(k) !== uuid) return false;
      reserved.set(k, uuid);
      return true;
    },
    holder: (driver, label) => reserved.get(`${driver}\0${label}`),
    count: (driver) => [...reserved.keys()].filter((k) => k.startsWith(`${driver}\0`)).length,
    remember: (driver, path, uuid, original) => {
      const k = `${driver}\0${path}`;
      const r = remembered.get(k) ?? { original, users: new Set<string>() };
      r.users.add(uuid);
      remembered.set(k, r);
      return r.original;
    },
    recall: (driver, path) => {
      const r = remembered.get(`${driver}\0${path}`);
      return r ? { original: r.original, users: [...r.users] } : undefined;
    },
    release: (driver, path, uuid) => {
      const r = remembered.get(`${driver}\0${path}`);
      r?.users.delete(uuid);
      return r && r.users.size === 0 ? r.original : undefined;
    },
    forget: (driver, path) => {
      remembered.delete(`${driver}\0${path}`);
    },
  };
}

/** The machine's files QEMU gets as fds svirt opened (no driver grants their paths): rng sources, pflash. */
function machineFdNotes(def: DomainDef): string[] {
  const out = (def.rngs ?? []).flatMap((r, i) =>
    r.backend.model === 'random' ? [`rng${i}: ${r.backend.path} (read-only, the kernel's random device; not relabelled)`] : [],
  );
  if (def.os.loader?.type === 'pflash') {
    out.push(`pflash0: ${def.os.loader.path} (firmware code, read-only)`);
    if (def.os.nvram) out.push(`pflash1: ${def.os.nvram.path} (the guest's nvram, read-write)`);
  }
  return out;
}
