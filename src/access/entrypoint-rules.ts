/**
 * The entrypoint rules (issue 15): the `[entrypoints]` table of the access rules file, its
 * defaults and the fixed floors no rule lifts. The check itself is in entrypoints.ts.
 */
import { posix } from 'node:path';
import { SvirtError } from '../errors.js';

export interface EntrypointRules {
  /** Trees whose files a guest may use. Default: `/` (everything the other rules leave). */
  readonly allow: readonly string[];
  /** Trees refused whatever `allow` says, on top of the fixed floor (FLOOR_DENY). */
  readonly deny: readonly string[];
  /** Trees a guest may only read (kernels, firmware, ISO images), on top of FLOOR_READONLY. */
  readonly readonly: readonly string[];
  /** SELinux types a file may have before svirt labels it, when the guest's stack has selinux. */
  readonly selinuxTypes: readonly string[];
  /** Whether a regular file with more than one hard link may be used (default false). */
  readonly hardLinks: boolean;
  /** Whether block devices may be disks (default true: root chose them). */
  readonly blockDevices: boolean;
  /** Storage pools whose volumes are allowed wherever their directory is (entrypoint-pools.ts). */
  readonly pools: readonly string[];
}

/** Trees no guest file may come from, whatever the rules say. */
export const FLOOR_DENY: readonly string[] = ['/etc', '/root', '/proc', '/sys', '/run', '/var/run', '/var/log', '/var/spool'];

/** Host trees a guest may read from but never write, whatever the rules say. */
export const FLOOR_READONLY: readonly string[] = [
  '/bin',
  '/sbin',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/usr',
  '/boot',
  '/opt',
];

export const DEFAULT_ENTRYPOINT_RULES: EntrypointRules = {
  allow: ['/'],
  deny: [],
  readonly: [],
  selinuxTypes: [
    'virt_image_t',
    'svirt_image_t',
    'virt_content_t',
    'virt_var_lib_t',
    'virt_log_t',
    'virt_home_t',
    'svirt_home_t',
    'user_home_t',
    'user_tmp_t',
    'tmp_t',
    'tmpfs_t',
    'nfs_t',
    'cifs_t',
    'fusefs_t',
    'iso9660_t',
    'usr_t',
    'boot_t',
    'fixed_disk_device_t',
    'removable_device_t',
  ],
  hardLinks: false,
  blockDevices: true,
  pools: [],
};

const KEYS: Readonly<Record<string, keyof EntrypointRules>> = {
  allow: 'allow',
  deny: 'deny',
  readonly: 'readonly',
  selinux_types: 'selinuxTypes',
  hard_links: 'hardLinks',
  block_devices: 'blockDevices',
  pools: 'pools',
};

const MAX_ENTRIES = 256;

const SELINUX_TYPE = /^[a-z][a-z0-9_]{0,126}_t$/u;

/** A pool name as pool-define takes it: one path component, no control characters. */
function poolName(v: unknown): string {
  if (
    typeof v !== 'string' ||
    v === '' ||
    v === '.' ||
    v === '..' ||
    Buffer.byteLength(v) > 255 ||
    /[/\u0000-\u001f\u007f]/u.test(v)
  )
    throw ruleError(`pools: ${JSON.stringify(v)} is not a storage pool name`);
  return v;
}

function ruleError(message: string): SvirtError {
  return new SvirtError('SVIRT_ERR_USAGE', `access rules: [entrypoints] ${message}`);
}

function treeList(key: string, v: unknown): string[] {
  if (!Array.isArray(v) || v.length > MAX_ENTRIES) throw ruleError(`${key} must be a list of at most ${MAX_ENTRIES} paths`);
  return v.map((p: unknown) => {
    if (typeof p !== 'string' || !p.startsWith('/') || p.includes('\0'))
      throw ruleError(`${key}: ${JSON.stringify(p)} is not an absolute path`);
    const normal = posix.normalize(p);
    if (normal !== p && normal !== p.replace(/\/+$/u, ''))
      throw ruleError(`${key}: ${JSON.stringify(p)} is not a normal path (write ${JSON.stringify(normal)})`);
    return normal.length > 1 ? normal.replace(/\/+$/u, '') : normal;
  });
}

/**
 * The `[entrypoints]` table of the access rules file, validated strictly: unknown keys and
 * wrong types are errors. Keys left out keep their defaults; `deny` and `readonly` add to the
 * fixed floors, which no rule can lift.
 */
export function parseEntrypointRules(value: unknown): EntrypointRules {
  if (value === undefined) return DEFAULT_ENTRYPOINT_RULES;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw ruleError('must be a table');
  const out: Record<string, unknown> = { ...DEFAULT_ENTRYPOINT_RULES };
  for (const [key, v] of Object.entries(value)) {
    const field = KEYS[key];
    if (field === undefined) throw ruleError(`unknown key ${JSON.stringify(key)} (known: ${Object.keys(KEYS).join(', ')})`);
    if (field === 'hardLinks' || field === 'blockDevices') {
      if (typeof v !== 'boolean') throw ruleError(`${key} must be true or false`);
      out[field] = v;
    } else if (field === 'pools') {
      if (!Array.isArray(v) || v.length > MAX_ENTRIES) throw ruleError(`${key} must be a list of storage pool names`);
      out[field] = v.map(poolName);
    } else if (field === 'selinuxTypes') {
      if (!Array.isArray(v) || v.length > MAX_ENTRIES) throw ruleError(`${key} must be a list of SELinux types`);
      for (const t of v)
        if (typeof t !== 'string' || !SELINUX_TYPE.test(t))
          throw ruleError(`${key}: ${JSON.stringify(t)} is not an SELinux type`);
      out[field] = [...(v as string[])];
    } else {
      out[field] = treeList(key, v);
    }
  }
  return out as unknown as EntrypointRules;
}
