/**
 * A guest's device allow-list: libvirt's defaults plus the block devices its definition
 * names, enforced by the v1 devices controller (`devices.deny a`, then one `devices.allow`
 * line per rule) or by a cgroup v2 BPF device program (native/devfilter.c, through the addon).
 */
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SvirtError } from '../../errors.js';
import { deviceFilter } from '../../host/native.js';
import type { GuestResource } from '../../security/driver.js';

/** "c 1:3 rw": type, major:minor (or *), access (r, w, m). */
export interface DeviceRule {
  readonly type: 'c' | 'b';
  readonly major: number | '*';
  readonly minor: number | '*';
  readonly access: string;
  /** What it is for, for profile: "/dev/null", "disk vda" */
  readonly why: string;
}

/** libvirt's defaults (qemu.conf cgroup_device_acl) that svirt allows too. */
export const DEFAULT_DEVICES = [
  '/dev/null',
  '/dev/random',
  '/dev/urandom',
  '/dev/kvm',
  '/dev/ptmx',
  '/dev/net/tun',
  '/dev/vhost-net',
];

export function ruleText(r: DeviceRule): string {
  return `${r.type} ${r.major}:${r.minor} ${r.access}`;
}

export function devMajor(rdev: number): number {
  return Math.floor(rdev / 256) & 0xfff;
}

export function devMinor(rdev: number): number {
  return (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
}

/** A rule for a device node (a path that is no device is skipped: undefined). */
export function nodeRule(path: string, access: string, why: string): DeviceRule | undefined {
  let st;
  try {
    st = statSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined; // not ours to look at: nothing to allow
  }
  // absent on this host (no /dev/kvm under TCG): nothing to allow
  if (st === undefined || (!st.isCharacterDevice() && !st.isBlockDevice())) return undefined;
  return { type: st.isBlockDevice() ? 'b' : 'c', major: devMajor(st.rdev), minor: devMinor(st.rdev), access, why };
}

/** The defaults, the pty range (136:*), and every block device among the guest's files (through the handle svirt checked). */
export function guestDeviceRules(resources: readonly GuestResource[]): DeviceRule[] {
  const rules: DeviceRule[] = [];
  for (const p of DEFAULT_DEVICES) {
    const r = nodeRule(p, 'rw', p);
    if (r) rules.push(r);
  }
  rules.push({ type: 'c', major: 136, minor: '*', access: 'rw', why: 'ptys (/dev/pts)' });
  for (const res of resources) {
    const st = res.handle?.stats;
    if (!st?.isBlockDevice()) continue;
    const readonly = res.disk?.readonly === true;
    rules.push({ type: 'b', major: devMajor(st.rdev), minor: devMinor(st.rdev), access: readonly ? 'r' : 'rw', why: res.path });
  }
  return rules;
}

/** v1: deny everything, then allow each rule (a cgroup starts with its parent's list). */
export function applyDevicesV1(dir: string, rules: readonly DeviceRule[]): void {
  write(dir, 'devices.deny', 'a');
  for (const r of rules) write(dir, 'devices.allow', ruleText(r));
}

/** v1 hot-plug: one more rule, or one fewer. */
export function changeDeviceV1(dir: string, rule: string, allow: boolean): void {
  write(dir, allow ? 'devices.allow' : 'devices.deny', rule);
}

/** v2: (re)attach the BPF program holding exactly these rules; a second call replaces the first. */
export function applyDevicesV2(dir: string, rules: readonly (DeviceRule | string)[]): void {
  const texts = rules.map((r) => (typeof r === 'string' ? r : ruleText(r)));
  try {
    deviceFilter(dir, texts);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new SvirtError('SVIRT_ERR_CGROUP', `cannot attach the device allow-list to "${dir}": ${why}`, { cause: err });
  }
}

function write(dir: string, file: string, value: string): void {
  try {
    writeFileSync(join(dir, file), value, { flag: 'w' });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new SvirtError('SVIRT_ERR_CGROUP', `cannot write "${value}" to ${join(dir, file)}: ${e.code ?? e.message}`, {
      cause: err,
    });
  }
}
