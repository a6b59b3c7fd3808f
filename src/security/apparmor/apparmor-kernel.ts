/** What the running kernel says about AppArmor (read-only: loading goes through apparmor_parser). */
import { existsSync, readFileSync } from 'node:fs';

const SECURITYFS = '/sys/kernel/security/apparmor';
const MODULE_ENABLED = '/sys/module/apparmor/parameters/enabled';

/** Whether the kernel runs AppArmor (securityfs dir present, or the module says enabled). */
export function kernelRunsAppArmor(): boolean {
  if (existsSync(SECURITYFS)) return true;
  if (!existsSync(MODULE_ENABLED)) return false; // the usual answer elsewhere, without a thrown ENOENT (~1 ms, issue 17)
  try {
    return readFileSync(MODULE_ENABLED, 'utf8').trim() === 'Y';
  } catch {
    // no AppArmor module on this kernel
    return false;
  }
}

/** Whether the kernel lists the profile; an unreadable list counts as loaded (the parser decides). */
export function kernelProfileLoaded(name: string): boolean {
  let list: string;
  try {
    list = readFileSync(`${SECURITYFS}/profiles`, 'utf8');
  } catch {
    // securityfs not mounted or not readable: let apparmor_parser report the real problem
    return true;
  }
  return list.split('\n').some((line) => line === name || line.startsWith(`${name} (`));
}

/** The AppArmor label of a process, e.g. `svirt-<uuid> (enforce)`, or undefined if unreadable. */
export function processProfile(pid: number): string | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  // the LSM-specific file first: with stacked LSMs attr/current may belong to another one
  for (const file of [`/proc/${pid}/attr/apparmor/current`, `/proc/${pid}/attr/current`]) {
    try {
      const current = readFileSync(file, 'utf8').replace(/\0/gu, '').trim();
      if (current !== '') return current;
    } catch {
      // this kernel lacks the file or the process is gone: try the next
    }
  }
  return undefined;
}

/** The AppArmor profile this process runs under, when it is confined (svirt-manager); undefined when unconfined or without AppArmor. */
export function selfAppArmorProfile(): string | undefined {
  if (!kernelRunsAppArmor()) return undefined;
  const label = processProfile(process.pid);
  if (label === undefined || label === 'unconfined') return undefined;
  return label.replace(/ \((?:enforce|complain|kill|unconfined)\)$/u, '');
}
