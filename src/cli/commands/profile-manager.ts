/**
 * `svirt profile` without a guest: the manager's own confinement (issue 18), read from the
 * kernel for this very process: its SELinux context, its AppArmor profile and mode,
 * NoNewPrivs, and whether it was entered through svirt's launcher (native/svirt-launcher.c,
 * the entry point the manager's domain and profile attach to; docs/confinement.md). The
 * per-guest monitors svirt forks inherit all of it.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { ParsedArgs } from '../args.js';
import { output } from '../context.js';

/** The SELinux type of svirt's manager (the reference policy's libvirtd domain). */
export const MANAGER_SELINUX_TYPE = 'virtd_t';
/** The AppArmor profile of svirt's manager (policy/apparmor/svirt-manager.in). */
export const MANAGER_APPARMOR_PROFILE = 'svirt-manager';

export interface ManagerConfinement {
  readonly pid: number;
  /** SELinux: absent when the kernel does not run it. */
  readonly selinux?: { readonly context: string; readonly enforcing: boolean; readonly managerDomain: boolean };
  /** AppArmor: absent when the kernel does not run it. */
  readonly apparmor?: { readonly profile: string; readonly mode: string; readonly managerProfile: boolean };
  readonly noNewPrivs: boolean;
  /** The launcher this process was started through (it sets SVIRT_ENTRY), or null. */
  readonly entry: string | null;
  /** Entered through the launcher and in the manager's domain or profile under every LSM the kernel runs. */
  readonly confined: boolean;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').replace(/\0/g, '').trim();
  } catch {
    return undefined; // not on this kernel: reported as absent
  }
}

/** What the kernel says about this process's confinement. */
export function managerConfinement(): ManagerConfinement {
  const selinuxOn = existsSync('/sys/fs/selinux/enforce');
  const context = selinuxOn ? read('/proc/self/attr/current') : undefined;
  const selinux =
    context !== undefined
      ? {
          context,
          enforcing: read('/sys/fs/selinux/enforce') === '1',
          managerDomain: context.split(':')[2] === MANAGER_SELINUX_TYPE,
        }
      : undefined;
  const aaOn = read('/sys/module/apparmor/parameters/enabled') === 'Y';
  const aaLabel = aaOn ? read('/proc/self/attr/apparmor/current') : undefined;
  const m = aaLabel === undefined ? null : /^(.*?)(?: \((\w+)\))?$/.exec(aaLabel);
  const apparmor =
    m?.[1] !== undefined
      ? { profile: m[1], mode: m[2] ?? 'unconfined', managerProfile: m[1] === MANAGER_APPARMOR_PROFILE }
      : undefined;
  const status = read('/proc/self/status') ?? '';
  const noNewPrivs = /^NoNewPrivs:\s*1$/m.test(status);
  const entry = process.env['SVIRT_ENTRY'] ?? null;
  const lsms = [selinux?.managerDomain, apparmor && apparmor.managerProfile && apparmor.mode === 'enforce'].filter(
    (v) => v !== undefined,
  );
  const confined = entry !== null && lsms.length > 0 && lsms.every(Boolean);
  return { pid: process.pid, ...(selinux ? { selinux } : {}), ...(apparmor ? { apparmor } : {}), noNewPrivs, entry, confined };
}

export function managerText(c: ManagerConfinement): string {
  const lines = [`# manager (pid ${c.pid})`];
  lines.push(
    c.selinux
      ? `selinux: ${c.selinux.context} (${c.selinux.enforcing ? 'enforcing' : 'permissive'}; ${c.selinux.managerDomain ? "the manager's domain" : `not the manager's domain ${MANAGER_SELINUX_TYPE}`})`
      : 'selinux: not running on this kernel',
  );
  lines.push(
    c.apparmor
      ? `apparmor: ${c.apparmor.profile} (${c.apparmor.mode}${c.apparmor.managerProfile ? "; the manager's profile" : `; not the manager's profile ${MANAGER_APPARMOR_PROFILE}`})`
      : 'apparmor: not running on this kernel',
  );
  lines.push(`no_new_privs: ${c.noNewPrivs ? 'yes' : 'no'}`);
  lines.push(c.entry ? `entry: ${c.entry} (svirt's launcher)` : "entry: not through svirt's launcher (native/out/svirt)");
  lines.push(
    c.confined
      ? 'confined: yes; the per-guest monitors svirt starts run under the same domain and profile'
      : 'confined: no (docs/confinement.md: install the policy, run svirt as ROOT/native/out/svirt)',
  );
  return lines.join('\n');
}

export function run(args: ParsedArgs): number {
  const c = managerConfinement();
  output(args, managerText(c), { manager: c });
  return 0;
}
