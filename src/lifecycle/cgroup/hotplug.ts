/**
 * Hot-plug and the device allow-list: a block device plugged into a running guest is added to
 * its cgroup's list before QEMU is given it, and taken out when it is unplugged. Journal
 * first (the rule is in the state dir's record before the kernel has it), then the kernel: v1
 * gets one `devices.allow` / `devices.deny` line, v2 a new BPF program that replaces the old
 * one atomically. A guest without a device list (the `none` stack, no cgroups) is left alone.
 */
import type { GuestResource } from '../../security/driver.js';
import { applyDevicesV2, changeDeviceV1, devMajor, devMinor } from './devices.js';
import { readJournal, writeJournal, type CgroupJournal } from './journal.js';

/** Adds each block device among `resources` (opened: their handles) to the guest's list. */
export function allowPlugged(stateDir: string, uuid: string, resources: readonly GuestResource[], readonly: boolean): void {
  const j = readJournal(stateDir, uuid);
  if (!j || j.devices.length === 0) return;
  const added: [string, string][] = [];
  for (const r of resources) {
    const st = r.handle?.stats;
    if (st?.isBlockDevice()) added.push([r.path, `b ${devMajor(st.rdev)}:${devMinor(st.rdev)} ${readonly ? 'r' : 'rw'}`]);
  }
  if (added.length === 0) return;
  const next: CgroupJournal = {
    ...j,
    deviceRules: [...j.deviceRules, ...added.map(([, rule]) => rule)],
    plugged: { ...(j.plugged ?? {}), ...Object.fromEntries(added) },
  };
  writeJournal(stateDir, next);
  apply(
    next,
    added.map(([, rule]) => rule),
    true,
  );
}

/** Takes the rules of unplugged files out (a rule another disk still needs stays). */
export function denyUnplugged(stateDir: string, uuid: string, unplugged: readonly { readonly path: string }[]): void {
  const paths = unplugged.map((r) => r.path);
  const j = readJournal(stateDir, uuid);
  if (!j?.plugged || j.devices.length === 0) return;
  const plugged = { ...j.plugged };
  const rules = [...j.deviceRules];
  const gone: string[] = [];
  for (const p of paths) {
    const rule = plugged[p];
    if (rule === undefined) continue;
    delete plugged[p];
    rules.splice(rules.indexOf(rule), 1);
    if (!rules.includes(rule)) gone.push(rule);
  }
  if (rules.length === j.deviceRules.length) return;
  const next: CgroupJournal = { ...j, deviceRules: rules, plugged };
  writeJournal(stateDir, next);
  apply(next, gone, false);
}

function apply(j: CgroupJournal, changed: readonly string[], allow: boolean): void {
  for (const how of j.devices) {
    const d = j.dirs.find((x) => (how === 'v1' ? x.controllers.includes('devices') : x.version === 2));
    if (!d) continue;
    if (how === 'v1') for (const rule of changed) changeDeviceV1(d.dir, rule, allow);
    else applyDevicesV2(d.dir, j.deviceRules);
  }
}
