/**
 * The files svirt keeps in its AppArmor profile dir:
 *   abstractions/svirt-qemu   shared by every guest, rewritten when it differs from svirt's
 *   svirt-<uuid>              the guest's profile (template + two includes)
 *   svirt-<uuid>.files        the guest's rules
 *   .svirt-<uuid>.json        the guest's resource list, for regenerating on hotplug
 *   svirt-<uuid>-<id>         the profile of one helper process of the guest (apparmor-helper.ts)
 *                             (a dot file: apparmor_parser skips it when given the whole dir)
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, writeSync, constants } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { SvirtError, errnoOf, osError } from '../../errors.js';
import type { ResourceRole } from '../driver.js';
import type { RuleResource } from './apparmor-rules.js';
import { ABSTRACTION_NAME } from './apparmor-template.js';
import { removeFile as unlinkIfThere } from '../../host/files.js';

/** Contents of the guest's three files; undefined = the file does not exist. */
export interface GuestFiles {
  readonly profile: string | undefined;
  readonly rules: string | undefined;
  readonly state: string | undefined;
}

const ROLES: ReadonlySet<string> = new Set<ResourceRole>([
  'disk',
  'disk-readonly',
  'disk-shareable',
  'backing',
  'kernel',
  'initrd',
  'dtb',
  'loader',
  'nvram',
  'chardev',
  'log',
  'runtime-dir',
  'saved-state',
  'helper-log',
  'tpm-state',
  'shared-dir',
  'shared-dir-readonly',
]);

export class ProfileFiles {
  constructor(readonly dir: string) {}

  get abstractionPath(): string {
    return join(this.dir, 'abstractions', ABSTRACTION_NAME);
  }
  profilePath(profileName: string): string {
    return join(this.dir, profileName);
  }
  rulesPath(profileName: string): string {
    return join(this.dir, `${profileName}.files`);
  }
  statePath(profileName: string): string {
    return join(this.dir, `.${profileName}.json`);
  }

  /** Writes the shared abstraction when it is missing or differs (a local edit is overwritten). */
  ensureAbstraction(text: string): void {
    mkdir(join(this.dir, 'abstractions'));
    if (readIfExists(this.abstractionPath) !== text) writeAtomic(this.abstractionPath, text);
  }

  read(profileName: string): GuestFiles {
    return {
      profile: readIfExists(this.profilePath(profileName)),
      rules: readIfExists(this.rulesPath(profileName)),
      state: readIfExists(this.statePath(profileName)),
    };
  }

  /** Writes the guest's files; the profile last, so it never includes a missing rules file. */
  write(profileName: string, files: GuestFiles): void {
    mkdir(this.dir);
    const put = (path: string, text: string | undefined): void => {
      if (text === undefined) removeFile(path);
      else writeAtomic(path, text);
    };
    put(this.statePath(profileName), files.state);
    put(this.rulesPath(profileName), files.rules);
    put(this.profilePath(profileName), files.profile);
  }

  /** Deletes the guest's files; missing files are fine (idempotent). */
  remove(profileName: string): void {
    removeFile(this.profilePath(profileName));
    removeFile(this.rulesPath(profileName));
    removeFile(this.statePath(profileName));
  }

  /** The helper profiles written for a guest (`<guest profile>-<id>`), by name. */
  helperProfiles(profileName: string): string[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return [];
      throw osError('SVIRT_ERR_LABEL_RESTORE', 'list', this.dir, err);
    }
    return names.filter((n) => n.startsWith(`${profileName}-`) && !n.endsWith('.files'));
  }

  /** Whether the guest's resource list exists (its profile was written and not yet removed). */
  hasState(profileName: string): boolean {
    return readIfExists(this.statePath(profileName)) !== undefined;
  }

  /** The resource list remembered for hotplug. */
  readResources(profileName: string): RuleResource[] {
    const path = this.statePath(profileName);
    const text = readIfExists(path);
    if (text === undefined) {
      throw new SvirtError(
        'SVIRT_ERR_OPERATION_INVALID',
        `cannot update AppArmor profile "${profileName}": ${JSON.stringify(path)} is missing (is the guest running?)`,
        {
          details: { profile: profileName, path },
        },
      );
    }
    return parseState(text, path);
  }
}

export function stateText(resources: readonly RuleResource[]): string {
  return `${JSON.stringify({ version: 1, resources }, null, 2)}\n`;
}

function parseState(text: string, path: string): RuleResource[] {
  const bad = (why: string): SvirtError =>
    new SvirtError('SVIRT_ERR_INTERNAL', `corrupt svirt AppArmor state ${JSON.stringify(path)}: ${why}`, { details: { path } });
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw bad(err instanceof Error ? err.message : String(err));
  }
  if (typeof doc !== 'object' || doc === null || !('resources' in doc) || !Array.isArray(doc.resources))
    throw bad('no resources list');
  const out: RuleResource[] = [];
  for (const item of doc.resources as unknown[]) {
    if (typeof item !== 'object' || item === null) throw bad('resource is not an object');
    const { path: p, role, device } = item as Record<string, unknown>;
    if (typeof p !== 'string' || typeof role !== 'string' || !ROLES.has(role)) throw bad('resource without path or known role');
    if (device !== undefined && typeof device !== 'string') throw bad('device is not a string');
    const res: RuleResource = { path: p, role: role as ResourceRole, ...(device === undefined ? {} : { device }) };
    out.push(res);
  }
  return out;
}

function mkdir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw osError('SVIRT_ERR_LABEL_APPLY', 'create AppArmor profile dir', dir, err);
  }
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw osError('SVIRT_ERR_LABEL_APPLY', 'read', path, err);
  }
}

function removeFile(path: string): void {
  try {
    unlinkIfThere(path);
  } catch (err) {
    throw osError('SVIRT_ERR_LABEL_RESTORE', 'remove', path, err);
  }
}

/** Write to a temp file beside `path` (never through a symlink), fsync, rename over `path`. */
function writeAtomic(path: string, text: string): void {
  // a dot file, so apparmor_parser never picks a half-written file up from the dir
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  removeFile(tmp);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    writeSync(fd, text);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    unlinkIfThere(tmp);
    throw osError('SVIRT_ERR_LABEL_APPLY', 'write', path, err);
  }
}
