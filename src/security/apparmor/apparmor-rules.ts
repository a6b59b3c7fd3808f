/**
 * The per-guest rules file (`svirt-<uuid>.files`): exactly the files of one guest, each with
 * the access its role needs, and nothing else.
 */
import { SvirtError } from '../../errors.js';
import type { ResourceRole } from '../driver.js';
import { checkedPath, quotePath } from './apparmor-paths.js';

/** One file of the guest, as the rules need it. */
export interface RuleResource {
  readonly path: string;
  readonly role: ResourceRole;
  /** The disk's target (`vda`) for the comment, when the resource belongs to a disk. */
  readonly device?: string;
}

export interface GuestRulesInput {
  /** Already validated domain name and uuid. */
  readonly guestName: string;
  readonly uuid: string;
  readonly emulator: string;
  readonly virtType: 'kvm' | 'qemu';
  /** Host random devices an `<rng>` reads (svirt passes the fd; AppArmor revalidates it at exec). */
  readonly rngDevices?: readonly string[];
  readonly resources: readonly RuleResource[];
  /** Trees no guest may touch at all (the profile dir itself). */
  readonly protectedDirs: readonly string[];
}

interface RolePolicy {
  readonly perms: string;
  /** Read-only roles also get `deny ... w`, which wins over any other rule of the profile. */
  readonly denyWrite: boolean;
}

/**
 * `k` (file locks) is added where QEMU's block layer takes its image locks (disks, backing
 * layers, pflash loader and nvram); it grants no access to the data.
 */
/** Files of a guest's helper processes: their own profiles name them (apparmor-helper.ts), QEMU's does not. */
export const HELPER_ONLY_ROLES: ReadonlySet<ResourceRole> = new Set<ResourceRole>([
  'helper-log',
  'tpm-state',
  'shared-dir',
  'shared-dir-readonly',
]);

const ROLE_POLICY: Readonly<
  Record<Exclude<ResourceRole, 'runtime-dir' | 'helper-log' | 'tpm-state' | 'shared-dir' | 'shared-dir-readonly'>, RolePolicy>
> = {
  disk: { perms: 'rwk', denyWrite: false },
  'disk-shareable': { perms: 'rwk', denyWrite: false },
  'disk-readonly': { perms: 'rk', denyWrite: true },
  backing: { perms: 'rk', denyWrite: true },
  kernel: { perms: 'r', denyWrite: true },
  initrd: { perms: 'r', denyWrite: true },
  dtb: { perms: 'r', denyWrite: true },
  loader: { perms: 'rk', denyWrite: true },
  nvram: { perms: 'rwk', denyWrite: false },
  chardev: { perms: 'rw', denyWrite: false },
  // AppArmor revalidates inherited fds at exec: QEMU needs to append to its log.
  log: { perms: 'w', denyWrite: false },
  'saved-state': { perms: 'rw', denyWrite: false },
};

/** Host trees no guest file may live in, whatever the access. */
const NEVER = ['/proc', '/sys', '/etc'];
/** Host trees a guest may read from (kernels, firmware) but never write to. */
const READ_ONLY = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/usr', '/boot'];
/** Device nodes that expose host memory or I/O ports. */
const NEVER_DEVICES = ['/dev/mem', '/dev/kmem', '/dev/port'];
const DISK_ROLES: readonly (ResourceRole | 'emulator')[] = ['disk', 'disk-shareable', 'disk-readonly', 'backing'];

function under(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/** Why `path` must not be given to a guest in `role`, or undefined. */
export function restrictedReason(
  path: string,
  role: ResourceRole | 'emulator',
  writable: boolean,
  protectedDirs: readonly string[],
): string | undefined {
  if (path === '/') return 'the root directory';
  const prot = protectedDirs.find((d) => under(path, d));
  if (prot !== undefined) return `inside svirt's AppArmor profile dir ${JSON.stringify(prot)}`;
  const never = NEVER.find((d) => under(path, d));
  if (never !== undefined) return `inside the host's ${never}`;
  if (NEVER_DEVICES.includes(path)) return 'a device that exposes host memory or I/O ports';
  if (under(path, '/dev') && !DISK_ROLES.includes(role)) return `a device node given as ${role}`;
  if (writable) {
    const ro = READ_ONLY.find((d) => under(path, d));
    if (ro !== undefined) return `inside the host's ${ro}, which a guest may only read`;
  }
  if (role === 'runtime-dir' && path.split('/').filter((c) => c !== '').length < 2) return 'too close to / for a runtime dir';
  return undefined;
}

function assertAllowed(
  path: string,
  original: string,
  role: ResourceRole | 'emulator',
  writable: boolean,
  protectedDirs: readonly string[],
): void {
  const reason = restrictedReason(path, role, writable, protectedDirs);
  if (reason === undefined) return;
  const shown = path === original ? JSON.stringify(path) : `${JSON.stringify(original)} (${JSON.stringify(path)})`;
  throw new SvirtError('SVIRT_ERR_PATH_INVALID', `refusing ${role} ${shown}: ${reason}`, {
    details: { path: original, resolved: path, role, reason },
  });
}

/** Rules for one resource; throws before anything is produced when a path is refused. */
function resourceRules(res: RuleResource, protectedDirs: readonly string[]): string[] {
  const what = res.role;
  const { declared, target } = checkedPath(res.path, what);
  const label =
    res.device === undefined ? res.role : res.role === 'backing' ? `backing layer of ${res.device}` : `${res.role} ${res.device}`;
  const paths = target === declared ? [target] : [target, declared];
  const lines = [target === declared ? `  # ${label}` : `  # ${label}: ${quotePath(declared)} resolves to ${quotePath(target)}`];
  if (res.role === 'runtime-dir') {
    for (const p of paths) {
      assertAllowed(p, res.path, res.role, true, protectedDirs);
      lines.push(`  ${quotePath(`${p}/`)} r,`, `  ${quotePath(`${p}/**`)} rwk,`);
    }
    return lines;
  }
  if (res.role === 'helper-log' || res.role === 'tpm-state' || res.role === 'shared-dir' || res.role === 'shared-dir-readonly')
    return []; // HELPER_ONLY_ROLES: the helper's own profile names them
  const policy = ROLE_POLICY[res.role];
  for (const p of paths) {
    assertAllowed(p, res.path, res.role, policy.perms.includes('w'), protectedDirs);
    lines.push(`  ${quotePath(p)} ${policy.perms},`);
    if (policy.denyWrite) lines.push(`  deny ${quotePath(p)} w,`);
  }
  return lines;
}

/** The whole rules file. Throws SVIRT_ERR_PATH_INVALID (naming the path) on the first refusal. */
export function guestRulesText(input: GuestRulesInput): string {
  const emulator = checkedPath(input.emulator, 'emulator');
  for (const p of new Set([emulator.target, emulator.declared])) {
    assertAllowed(p, input.emulator, 'emulator', false, input.protectedDirs);
  }
  const blocks: string[][] = [];
  const head = [`  # emulator`];
  for (const p of new Set([emulator.target, emulator.declared])) head.push(`  ${quotePath(p)} rm,`);
  blocks.push(head);
  const devices: string[] = [];
  if (input.virtType === 'kvm') devices.push('  # KVM (virt type kvm)', '  /dev/kvm rw,');
  // No /dev/ptmx or /dev/pts: a pty chardev reaches QEMU as a socket svirt-monitor relays.
  for (const p of new Set(input.rngDevices ?? [])) {
    if (p !== '/dev/urandom' && p !== '/dev/random')
      throw new SvirtError('SVIRT_ERR_PATH_INVALID', `refusing rng source ${JSON.stringify(p)}`);
    devices.push('  # rng backend', `  ${p} r,`);
  }
  if (devices.length > 0) blocks.push(devices);

  if (input.resources.some((r) => HELPER_ONLY_ROLES.has(r.role))) {
    // its helpers (swtpm, virtiofsd, passt) run under profiles of their own, svirt-<uuid>-<id>
    blocks.push(['  # its helper processes', `  unix (send, receive) peer=(label=svirt-${input.uuid}-*),`]);
  }
  const seen = new Set<string>();
  for (const res of input.resources) {
    const key = `${res.role}\0${res.path}\0${res.device ?? ''}`;
    if (seen.has(key) || HELPER_ONLY_ROLES.has(res.role)) continue;
    seen.add(key);
    blocks.push(resourceRules(res, input.protectedDirs));
  }
  return [
    `# svirt: rules of guest "${input.guestName}" (${input.uuid}): its own files and nothing else.`,
    '# Generated from the domain definition; rewritten on start and on hotplug. Do not edit.',
    '',
    blocks.map((b) => b.join('\n')).join('\n\n'),
    '',
  ].join('\n');
}
