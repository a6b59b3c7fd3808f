/**
 * A cgroup per guest (docs/cgroups.md): made under svirt's own cgroup (or SVIRT_CGROUP_PARENT)
 * in every hierarchy it needs, journalled in the state dir before it is made, filled with the
 * guest's limits and device allow-list, joined by svirt-exec before it execs QEMU or a
 * helper, and removed with the guest.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DomainDef } from '../../domain/domain-def.js';
import { parseTune } from '../../domain/tune.js';
import { SvirtError } from '../../errors.js';
import type { GuestResource } from '../../security/driver.js';
import { applyDevicesV1, applyDevicesV2, guestDeviceRules, ruleText, type DeviceRule } from './devices.js';
import {
  GUEST_CONTROLLERS,
  hierarchyDir,
  hostLayout,
  type CgroupLayout,
  type GuestController,
  type Hierarchy,
} from './layout.js';
import { cgroupJournalPath, readJournal, writeJournal, type CgroupDir, type CgroupJournal } from './journal.js';
import { blockDeviceNumber, pidsMax, v1Writes, v2Writes, type ControlWrite } from './settings.js';

/** The plan for a guest: where its cgroup goes and what it holds (made by makeGuestCgroupDirs and fillGuestCgroup; printed by profile). */
export interface CgroupPlan extends CgroupJournal {
  readonly rules: readonly DeviceRule[];
  /** v2 controllers to enable in the parent's cgroup.subtree_control */
  readonly enable: readonly string[];
  readonly v2Mount?: string;
}

/** Whether svirt makes cgroups at all: as root (an unprivileged svirt has no cgroup of its own to delegate). */
export function cgroupsWanted(): boolean {
  return process.getuid?.() === 0 && process.env.SVIRT_CGROUP !== 'off';
}

/** SVIRT_CGROUP_PARENT: a cgroup path (absolute in each hierarchy), else undefined (svirt's own). */
export function configuredParent(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const p = env.SVIRT_CGROUP_PARENT;
  if (p === undefined || p === '') return undefined;
  if (!/^(\/[A-Za-z0-9_.@:-]+)+$/.test(p) || p.split('/').some((c) => c === '.' || c === '..') || p.length > 512)
    throw new SvirtError('SVIRT_ERR_CGROUP', `SVIRT_CGROUP_PARENT=${JSON.stringify(p)} is not a cgroup path like /machine/svirt`);
  return p;
}

/**
 * Where the guest's cgroup goes and what it holds. Fails closed: a limit the layout cannot
 * express (no pids controller, no cpu controller for a cputune) is an error, not a skip.
 */
export function planGuestCgroup(
  def: DomainDef,
  resources: readonly GuestResource[],
  confined: boolean,
  layout: CgroupLayout = hostLayout(),
): CgroupPlan {
  if (layout.kind === 'none')
    throw new SvirtError('SVIRT_ERR_CGROUP', 'no cgroup file system is mounted where svirt can see its own cgroup');
  const tune = parseTune(def.source);
  const pids = pidsMax();
  const parent = configuredParent();
  const leaf = `svirt-${def.uuid}`;
  const dirs: CgroupDir[] = [];
  const writes: ControlWrite[] = [];
  const seen = new Set<string>();
  const pathIn = (h: Hierarchy): string => join(hierarchyDir(h, parent ?? h.own), leaf);
  const v2 = layout.v2;
  const v2Has = (c: string): boolean => v2 !== undefined && v2.controllers.includes(c === 'blkio' ? 'io' : c);
  const wanted = v1Writes(tune, pids, blockDeviceNumber);
  const v2wanted = v2 ? v2Writes(tune, pids, blockDeviceNumber) : [];
  const enable = new Set<string>();
  for (const c of GUEST_CONTROLLERS) {
    const h = layout.v1[c];
    const needed = c === 'devices' ? confined : wanted.some((w) => w.controller === c);
    if (h) {
      // A hierarchy the guest has nothing in (no limit, no device list) is not made: each one
      // costs a mkdir, a join and an rmdir on every start and stop (docs/cgroups.md).
      if (!needed) continue;
      if (!seen.has(h.mount)) {
        seen.add(h.mount);
        dirs.push({ version: 1, controllers: h.controllers, dir: pathIn(h) });
      }
      writes.push(...wanted.filter((w) => w.controller === c));
    } else if (c !== 'devices' && v2Has(c)) {
      const own = v2wanted.filter((w) => w.controller === c || (c === 'blkio' && w.controller === 'io'));
      writes.push(...own);
      if (own.length > 0) enable.add(c === 'blkio' ? 'io' : c);
    } else if (needed && !(c === 'devices' && v2)) {
      // (a device list without v1's controller is a BPF program on the cgroup2 cgroup)
      throw new SvirtError(
        'SVIRT_ERR_CGROUP',
        `the host has no ${c === 'blkio' ? 'blkio/io' : c} cgroup controller for ${describe(wanted, c)}`,
      );
    }
  }
  // The device list: v1's controller where the host has it, else a BPF program on the
  // cgroup2 cgroup. On a hybrid host v1's controller alone enforces it, and a controller-less
  // cgroup2 cgroup would hold nothing else, so none is made there.
  const devices: ('v1' | 'v2')[] = [];
  if (confined) devices.push(layout.v1.devices ? 'v1' : 'v2');
  if (v2 && (enable.size > 0 || devices.includes('v2') || dirs.length === 0))
    dirs.push({ version: 2, controllers: [...enable], dir: pathIn(v2) });
  const rules = confined ? guestDeviceRules(resources) : [];
  const plan = {
    uuid: def.uuid,
    layout: layout.kind,
    dirs,
    devices,
    deviceRules: rules.map(ruleText),
    writes,
    rules,
    enable: [...enable],
  };
  return v2 ? { ...plan, v2Mount: v2.mount } : plan;
}

function describe(w: readonly ControlWrite[], c: string): string {
  return w.find((x) => x.controller === c)?.from ?? c;
}

/** What the journal keeps of a plan. */
function journalOf(plan: CgroupPlan): CgroupJournal {
  return {
    uuid: plan.uuid,
    layout: plan.layout,
    dirs: plan.dirs,
    devices: plan.devices,
    deviceRules: plan.deviceRules,
    writes: plan.writes,
  };
}

/**
 * Journals the plan and makes its (empty) directories; nothing is in them yet. On failure it
 * removes what it made.
 */
export function makeGuestCgroupDirs(stateDir: string, plan: CgroupPlan, crash: (point: string) => void): void {
  mkdirSync(join(stateDir, 'cgroups'), { recursive: true, mode: 0o700 });
  refuseForeign(stateDir, plan);
  const record = journalOf(plan);
  writeFileSync(cgroupJournalPath(stateDir, plan.uuid), JSON.stringify(record), { mode: 0o600 });
  crash('start:cgroup-journaled');
  const made: CgroupDir[] = [];
  try {
    for (const d of plan.dirs) {
      if (existsSync(d.dir)) removeDir(d.dir); // this state dir's leftover (refuseForeign): no old settings or processes
      const parent = join(d.dir, '..');
      if (!existsSync(parent)) mkdirSync(parent, { recursive: true });
      if (d.version === 2 && plan.enable.length > 0 && plan.v2Mount) enableControllers(plan.v2Mount, parent, plan.enable);
      mkdirOne(d.dir);
      made.push(d);
    }
    crash('start:cgroup-made');
  } catch (err) {
    removeMade(stateDir, record, made);
    throw err;
  }
}

/**
 * Writes the limits and the device list into the directories makeGuestCgroupDirs made (the
 * journal first, when the plan's device rules are newer than the journal's).
 */
export function fillGuestCgroup(stateDir: string, plan: CgroupPlan): void {
  writeJournal(stateDir, journalOf(plan));
  for (const w of plan.writes) {
    const d = plan.dirs.find((x) =>
      w.version === 1 ? x.version === 1 && x.controllers.includes(w.controller) : x.version === 2,
    );
    if (!d) throw new SvirtError('SVIRT_ERR_INTERNAL', `no cgroup dir for ${w.file}`);
    writeControl(d.dir, w.file, w.value, w.from);
  }
  for (const how of plan.devices) {
    const d = plan.dirs.find((x) => (how === 'v1' ? x.controllers.includes('devices') : x.version === 2));
    if (!d) throw new SvirtError('SVIRT_ERR_INTERNAL', `no cgroup dir for the ${how} device list`);
    if (how === 'v1') applyDevicesV1(d.dir, plan.rules);
    else applyDevicesV2(d.dir, plan.rules);
  }
}

/**
 * A guest's cgroup is `svirt-UUID` under svirt's own, so another svirt (another state dir)
 * running a guest of the same uuid on this host has the same directory. Only a directory this
 * state dir's journal names is ours to remove (a leftover of a crashed start); any other one
 * refuses the start before the journal names it, so neither this start's undo nor a later
 * reconcile ever empties (kills) or removes the other svirt's guest.
 */
function refuseForeign(stateDir: string, plan: CgroupPlan): void {
  const ours = new Set((readJournal(stateDir, plan.uuid)?.dirs ?? []).map((d) => d.dir));
  for (const d of plan.dirs) {
    if (existsSync(d.dir) && !ours.has(d.dir)) {
      throw new SvirtError(
        'SVIRT_ERR_CGROUP',
        `the cgroup "${d.dir}" exists and is not this state dir's (another svirt runs a guest with uuid ${plan.uuid}?): left alone`,
      );
    }
  }
}

/**
 * A start that failed before any process joined: removes the directories this call made (not
 * one another svirt made between the check and mkdir), then the journal, or leaves the journal
 * naming only what could not be removed.
 */
function removeMade(stateDir: string, record: CgroupJournal, made: readonly CgroupDir[]): void {
  const left = made.filter((d) => {
    try {
      removeDir(d.dir);
      return false;
    } catch {
      return true;
    }
  });
  if (left.length === 0) unlinkSync(cgroupJournalPath(stateDir, record.uuid));
  else writeJournal(stateDir, { ...record, dirs: left });
}

function removeDir(dir: string): void {
  try {
    rmdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT')
      throw new SvirtError('SVIRT_ERR_CGROUP', `cannot remove the cgroup "${dir}": ${code ?? String(err)}`, { cause: err });
  }
}

function mkdirOne(dir: string): void {
  try {
    mkdirSync(dir);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new SvirtError('SVIRT_ERR_CGROUP', `cannot make the guest's cgroup "${dir}": ${e.code ?? e.message}`, { cause: err });
  }
}

/**
 * v2: the controllers the guest's cgroup needs, enabled in each cgroup from the mount down to
 * its parent (only the missing ones; the kernel refuses a cgroup that has processes of its own).
 */
function enableControllers(mount: string, parent: string, wanted: readonly string[]): void {
  const chain = [mount];
  for (const c of parent
    .slice(mount.length)
    .split('/')
    .filter((x) => x !== ''))
    chain.push(join(chain.at(-1) ?? mount, c));
  for (const dir of chain) {
    const have = readFileSync(join(dir, 'cgroup.subtree_control'), 'utf8').trim().split(/\s+/);
    const missing = wanted.filter((c) => !have.includes(c));
    if (missing.length === 0) continue;
    try {
      writeFileSync(join(dir, 'cgroup.subtree_control'), missing.map((c) => `+${c}`).join(' '));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const hint = code === 'EBUSY' ? ' (it has processes of its own: set SVIRT_CGROUP_PARENT to a cgroup without any)' : '';
      throw new SvirtError(
        'SVIRT_ERR_CGROUP',
        `cannot enable ${missing.join(', ')} for guest cgroups in "${dir}": ${code ?? String(err)}${hint}`,
        {
          cause: err,
        },
      );
    }
  }
}

function writeControl(dir: string, file: string, value: string, from: string): void {
  try {
    writeFileSync(join(dir, file), value);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new SvirtError('SVIRT_ERR_CGROUP', `cannot apply ${from}: ${file} = ${value}: ${e.code ?? e.message}`, { cause: err });
  }
}

/** The guest cgroup's controllers, for the profile's display: which hierarchy holds `c`. */
export function controllerDir(j: CgroupJournal, c: GuestController): string | undefined {
  return j.dirs.find((d) => d.version === 1 && d.controllers.includes(c))?.dir ?? j.dirs.find((d) => d.version === 2)?.dir;
}
