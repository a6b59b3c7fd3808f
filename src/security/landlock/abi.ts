import type { LandlockFsAccess, LandlockNetAccess, LandlockScope } from '../confinement.js';

/** The newest Landlock ABI svirt knows (kernel 6.15: audit logging flags). */
export const LATEST_ABI = 7;

const FS_BY_ABI: readonly (readonly LandlockFsAccess[])[] = [
  [],
  [
    'execute',
    'write_file',
    'read_file',
    'read_dir',
    'remove_dir',
    'remove_file',
    'make_char',
    'make_dir',
    'make_reg',
    'make_sock',
    'make_fifo',
    'make_block',
    'make_sym',
  ],
  ['refer'],
  ['truncate'],
  [],
  ['ioctl_dev'],
];

/** Filesystem rights a ruleset for `abi` handles. */
export function fsRightsForAbi(abi: number): LandlockFsAccess[] {
  return FS_BY_ABI.slice(0, Math.max(0, abi) + 1).flat();
}

/** TCP rights (ABI ≥ 4). */
export function netRightsForAbi(abi: number): LandlockNetAccess[] {
  return abi >= 4 ? ['bind_tcp', 'connect_tcp'] : [];
}

/** IPC scopes (ABI ≥ 6). */
export function scopesForAbi(abi: number): LandlockScope[] {
  return abi >= 6 ? ['abstract_unix_socket', 'signal'] : [];
}

/** What a kernel with this ABI cannot enforce, in words, for capabilities and dominfo. */
export function describeMissing(abi: number): string[] {
  const missing: string[] = [];
  if (abi < 2) missing.push('file reparenting (refer)');
  if (abi < 3) missing.push('truncate');
  if (abi < 4) missing.push('TCP bind/connect');
  if (abi < 5) missing.push('device ioctl');
  if (abi < 6) missing.push('signal and abstract UNIX socket scoping');
  if (abi < 7) missing.push('denial logging');
  return missing;
}
