/**
 * A guest's cgroup for `dominfo` (what the kernel holds now: the values read back from the
 * control files) and `svirt profile` (what start would make, touching nothing).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DomainDef } from '../../domain/domain-def.js';
import { parseTune, type TuneDef } from '../../domain/tune.js';
import type { GuestResource } from '../../security/driver.js';
import { cgroupsWanted, planGuestCgroup } from './guest-cgroup.js';
import { readJournal } from './journal.js';
import { hostLayout } from './layout.js';

export type Field = [string, string | readonly string[]];

/** dominfo's cgroup fields: the running guest's cgroup read back, or the definition's tuning. */
export function cgroupFields(stateDir: string, def: DomainDef, running: boolean): Field[] {
  const tune = tuneLines(def);
  const j = running ? readJournal(stateDir, def.uuid) : undefined;
  if (!j) return tune.length > 0 ? [['Tuning', tune]] : [];
  const dirOf = (version: 1 | 2, controller: string): string | undefined =>
    j.dirs.find((d) => (version === 1 ? d.version === 1 && d.controllers.includes(controller) : d.version === 2))?.dir;
  const limits = j.writes.map((w) => {
    const dir = dirOf(w.version, w.controller);
    return `${w.from}: ${w.file} = ${dir ? readBack(dir, w.file) : '?'}`;
  });
  const fields: Field[] = [
    ['Cgroup', j.dirs.map((d) => `${d.dir} (${d.version === 1 ? `v1 ${d.controllers.join(',')}` : 'v2'})`)],
    ['Cgroup limits', limits],
  ];
  if (j.devices.length > 0)
    fields.push(['Cgroup devices', `${j.deviceRules.join(', ')} (${j.devices.join(' + ')}; all else denied)`]);
  else fields.push(['Cgroup devices', 'not restricted (the none stack)']);
  const v2 = j.dirs.find((d) => d.version === 2)?.dir;
  const pids = dirOf(1, 'pids') ?? v2;
  if (pids) fields.push(['Cgroup tasks', readBack(pids, 'pids.current')]);
  return fields;
}

/** The profile's section: where the cgroup would go and what it would hold. */
export function cgroupDryRun(def: DomainDef, resources: readonly GuestResource[], stack: readonly string[]): string {
  if (!cgroupsWanted()) return 'none: svirt makes guest cgroups as root only (or SVIRT_CGROUP=off)';
  if (hostLayout().kind === 'none') return 'none: no cgroup file system is mounted where svirt runs (the guest gets no cgroup)';
  let plan;
  try {
    plan = planGuestCgroup(
      def,
      resources,
      stack.some((d) => d !== 'none'),
    );
  } catch (err) {
    return `start would fail: ${(err as Error).message}`;
  }
  return [
    `layout: ${plan.layout}`,
    ...plan.dirs.map((d) => `cgroup: ${d.dir} (${d.version === 1 ? `v1 ${d.controllers.join(',')}` : 'v2'})`),
    ...plan.writes.map((w) => `${w.file} = ${w.value} (${w.from})`),
    plan.devices.length > 0
      ? `devices (${plan.devices.join(' + ')}; all else denied): ${plan.rules.map((r) => `${r.type} ${r.major}:${r.minor} ${r.access} ${r.why}`).join(', ')}`
      : 'devices: not restricted (the none stack confines nothing)',
    "joined before exec by the confinement's cgroup step (QEMU: in the monitor's child; helpers: in svirt-exec); the monitor stays outside (it runs the cleanup)",
  ].join('\n');
}

function readBack(dir: string, file: string): string {
  try {
    return readFileSync(join(dir, file), 'utf8').trim().replace(/\n/g, '; ');
  } catch (err) {
    return `unreadable (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
}

function tuneLines(def: DomainDef): string[] {
  let t: TuneDef;
  try {
    t = parseTune(def.source);
  } catch (err) {
    return [`invalid: ${(err as Error).message}`];
  }
  const out: string[] = [];
  const m = t.memory;
  if (m.hardLimitKiB !== undefined) out.push(`memtune hard_limit ${m.hardLimitKiB} KiB`);
  if (m.softLimitKiB !== undefined) out.push(`memtune soft_limit ${m.softLimitKiB} KiB`);
  if (m.swapHardLimitKiB !== undefined) out.push(`memtune swap_hard_limit ${m.swapHardLimitKiB} KiB`);
  if (t.cpu.shares !== undefined) out.push(`cputune shares ${t.cpu.shares}`);
  if (t.cpu.period !== undefined) out.push(`cputune period ${t.cpu.period} us`);
  if (t.cpu.quota !== undefined) out.push(`cputune quota ${t.cpu.quota} us`);
  if (t.blkio.weight !== undefined) out.push(`blkiotune weight ${t.blkio.weight}`);
  for (const d of t.blkio.devices) out.push(`blkiotune ${d.path}: ${JSON.stringify({ ...d, path: undefined })}`);
  return out;
}
