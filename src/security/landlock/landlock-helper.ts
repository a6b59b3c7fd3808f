import type { HelperPathAccess, HelperSpec } from '../helper.js';
import type { LandlockFsAccess, LandlockNetAccess, LandlockNetRule, LandlockPathRule, LandlockSpec } from '../confinement.js';
import { fsRightsForAbi, netRightsForAbi, scopesForAbi } from './abi.js';

/** Landlock rights for each way a helper uses a path (helper.ts). */
const ACCESS: Readonly<Record<HelperPathAccess, readonly LandlockFsAccess[]>> = {
  read: ['read_file'],
  write: ['read_file', 'write_file', 'truncate'],
  exec: ['read_file', 'execute'],
  'tree-read': ['read_file', 'read_dir'],
  'tree-write': [
    'read_file',
    'write_file',
    'read_dir',
    'make_reg',
    'make_dir',
    'make_sock',
    'make_sym',
    'make_fifo',
    'remove_file',
    'remove_dir',
    'refer',
    'truncate',
  ],
  // Landlock cannot tell its own files from others': DAC (and /tmp's sticky bit) does.
  'create-in': ['make_reg', 'read_file', 'write_file', 'remove_file', 'truncate'],
};

export interface HelperRulesetInput {
  readonly helper: HelperSpec;
  readonly abi: number;
  readonly bestEffort: boolean;
  /** Directories of system code every program needs (read and execute). */
  readonly systemCode: readonly string[];
}

/**
 * A helper's own ruleset: its program, the system's libraries, /dev/null and /dev/urandom,
 * exactly the paths its device declares, and TCP only on its declared ports. Nothing of
 * QEMU's (no firmware, no runtime dir unless declared): a helper reaches less than its guest.
 */
export function helperRuleset(input: HelperRulesetInput): LandlockSpec {
  const { helper, abi } = input;
  // A program that sandboxes itself (passt) mounts and pivots its own root, which the kernel
  // forbids to a domain handling any filesystem access: its ruleset handles none.
  const handledFs = helper.sandboxesItself === true ? [] : fsRightsForAbi(abi);
  // A helper that connects wherever its guest does (passt): connect is left unhandled, bind stays ruled.
  const handledNet = netRightsForAbi(abi).filter((a) => a !== 'connect_tcp' || helper.tcp?.connectAny !== true);
  const rules: LandlockPathRule[] = [
    { path: helper.binary, access: ['read_file', 'execute'] },
    ...input.systemCode.map((path) => ({ path, access: ['read_file', 'read_dir', 'execute'] as const, optional: true })),
    { path: '/etc/ld.so.cache', access: ['read_file'], optional: true },
    { path: '/dev/null', access: ['read_file', 'write_file', 'truncate'] },
    { path: '/dev/urandom', access: ['read_file'] },
    ...helper.paths.map((p) => ({ path: p.path, access: ACCESS[p.access], ...(p.optional === true ? { optional: true } : {}) })),
  ];
  const ports = new Map<number, Set<LandlockNetAccess>>();
  const add = (port: number, a: LandlockNetAccess): void => {
    ports.set(port, (ports.get(port) ?? new Set()).add(a));
  };
  for (const p of helper.tcp?.bind ?? []) add(p, 'bind_tcp');
  for (const p of helper.tcp?.connect ?? []) add(p, 'connect_tcp');
  const netRules: LandlockNetRule[] = [...ports].map(([port, a]) => ({
    port,
    access: [...a].filter((x) => handledNet.includes(x)),
  }));
  return {
    handledFs,
    handledNet,
    scoped: scopesForAbi(abi),
    pathRules: handledFs.length === 0 ? [] : rules.map((r) => ({ ...r, access: r.access.filter((a) => handledFs.includes(a)) })),
    netRules: netRules.filter((r) => r.access.length > 0),
    bestEffort: input.bestEffort,
    logNewExec: abi >= 7,
    ...(input.bestEffort ? {} : { minAbi: abi }),
  };
}

/**
 * `svirt profile`'s lines for a helper that sandboxes itself: what its ruleset covers, what
 * it leaves to the helper's own sandbox, and what the ABI the rules are written for (the
 * kernel's, in best effort) cannot enforce.
 */
export function selfSandboxedLines(helper: HelperSpec, spec: LandlockSpec, abi: number, kernelAbi: number): string[] {
  const own =
    'its own sandbox (a user and mount namespace with an empty root, then seccomp) confines its files, and the kernel forbids mount and pivot_root to a domain that handles any filesystem access';
  const why = abi < kernelAbi ? `the rules are written for ABI ${abi}` : `kernel ABI ${kernelAbi}`;
  if (spec.handledNet.length === 0 && spec.scoped.length === 0) {
    return [
      `${helper.kind} ${helper.id}: no ruleset (${why}): its ruleset would handle only TCP bind (ABI 4) and the signal and abstract UNIX socket scopes (ABI 6); ${own}`,
    ];
  }
  const ports = spec.netRules.map((r) => r.port).join(' ') || 'none';
  const lines = [
    `${helper.kind} ${helper.id}: a ruleset of its own that handles no filesystem access: ${own}`,
    `handled net: ${spec.handledNet.join(' ') || '(none)'}; tcp bind allowed on: ${spec.handledNet.includes('bind_tcp') ? ports : 'any port'}`,
  ];
  if (helper.tcp?.connectAny === true) lines.push("tcp connect: not handled (it makes the guest's own connections)");
  lines.push(`scoped: ${spec.scoped.join(' ') || `(none: scopes need ABI 6, ${why})`}`);
  lines.push("not covered: UDP (Landlock has no UDP rules): its -u forwards and the guest's UDP go unchecked by Landlock");
  return lines;
}
