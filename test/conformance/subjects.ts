/**
 * The drivers the conformance suite runs over, each as the tests of its own folder build it
 * (selinux in userspace test mode on real xattrs, apparmor compiled by the real
 * apparmor_parser without loading), with what it declares of itself. A case that does not
 * apply to a driver is a declared capability `{ no: why }`: the suite prints the reason and
 * checks the declaration (e.g. a driver that "labels no files" is asserted to leave every
 * file untouched), so nothing passes silently.
 */
import { existsSync, lstatSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { SecLabelDef } from '../../src/domain/domain-def.js';
import { lgetxattr } from '../../src/host/native.js';
import { AppArmorDriver } from '../../src/security/apparmor/apparmor-driver.js';
import { findParser } from '../../src/security/apparmor/apparmor-parser.js';
import type { ConfinementSpec } from '../../src/security/confinement.js';
import { DacDriver, parseDacLabel } from '../../src/security/dac/dac-driver.js';
import type { DriverName, ResourceRole, SecurityDriver } from '../../src/security/driver.js';
import { LandlockDriver } from '../../src/security/landlock/landlock-driver.js';
import { NoneDriver } from '../../src/security/none/none-driver.js';
import { SelinuxDriver } from '../../src/security/selinux/selinux-driver.js';
import { probeLandlockHost } from '../../src/security/stack.js';
import { skipFiles } from '../support/selinux-files.js';

/** Applies, or does not, with the reason. */
export type Capability = true | { readonly no: string };

export interface Subject {
  readonly name: DriverName;
  /** Why this driver cannot run on this host, or false. */
  readonly skip: string | false;
  /** A fresh driver whose own state (profiles...) lives under `root`. */
  make(root: string): SecurityDriver;
  /** genLabel reserves the label in the store, so no two live guests share it. */
  readonly reserves: Capability;
  /** Labelling changes the files themselves (owner, mode, xattrs). */
  readonly changesFiles: Capability;
  /** A labelled resource carries this driver's mark while the guest holds it (see `marked`). */
  readonly marksResources: Capability;
  /** Whether this driver's mark is on `path` now (owner, label, profile rule). */
  marked?(root: string, label: SecLabelDef, path: string): boolean;
  /** A missing file is this driver's own failure (it opens every file it labels). */
  readonly failsOnMissingFile: Capability;
  /**
   * A driver stacked after this one that fails on a missing file this one accepts, so the
   * manager's undo runs back across drivers; or why there is none.
   */
  readonly partner: { readonly name: DriverName; readonly missingRole: ResourceRole } | { readonly no: string };
  /** The fields of the launcher spec this driver sets here, and why when there are none. */
  readonly confines: { readonly keys: readonly (keyof ConfinementSpec)[]; readonly why?: string };
  /** The dry run names the guest's private disk (drivers that name files at all). */
  readonly describesDisk: Capability;
  /** This driver's own state outside the guest's files, which restore must give back. */
  state?(root: string): unknown;
}

const root0 = process.getuid?.() === 0;
const NEEDS_ROOT = 'needs root (owners and trusted.* xattrs of real files)';
const PARSER = findParser();
const landlockHost = probeLandlockHost(process.env);
const profileDir = (root: string): string => join(root, 'apparmor.d', 'svirt');

function selinuxLabelOf(path: string): string | undefined {
  return lgetxattr(path, 'security.selinux')?.toString('utf8').replace(/\0+$/, '');
}

export const SUBJECTS: readonly Subject[] = [
  {
    name: 'none',
    skip: root0 ? false : NEEDS_ROOT,
    make: () => new NoneDriver(),
    reserves: { no: 'its label is type none: there is nothing to reserve, every guest shares it' },
    changesFiles: { no: 'it confines nothing and labels nothing' },
    marksResources: { no: 'it confines nothing and labels nothing' },
    failsOnMissingFile: { no: 'it opens no file' },
    partner: { no: "'none' cannot be stacked with another driver" },
    confines: { keys: [], why: 'the guest runs with svirt’s own credentials' },
    describesDisk: { no: "its label is type none: the dry run says 'not confined'" },
  },
  {
    name: 'dac',
    skip: root0 ? false : NEEDS_ROOT,
    make: () => new DacDriver({ range: { first: 1_900_000_000, count: 1000 }, taken: { uids: new Set(), gids: new Set() } }),
    reserves: true,
    changesFiles: true,
    marksResources: true,
    marked: (_root, label, path) => {
      const { uid, gid } = parseDacLabel(label.label, path);
      const st = lstatSync(path);
      return st.uid === uid && st.gid === gid;
    },
    failsOnMissingFile: true,
    partner: { name: 'selinux', missingRole: 'disk-readonly' }, // dac leaves read-only media alone; selinux labels them
    confines: { keys: ['uid', 'gid', 'groups'] },
    describesDisk: true,
  },
  {
    name: 'landlock',
    skip: !root0 ? NEEDS_ROOT : landlockHost.abi < 1 ? `the kernel has no Landlock (${landlockHost.error ?? 'ABI 0'})` : false,
    make: () => new LandlockDriver(landlockHost),
    reserves: { no: 'its label is a digest of the ruleset, shared by guests with the same rules' },
    changesFiles: { no: 'it labels no files: the ruleset names what QEMU may reach' },
    marksResources: { no: 'disks come as inherited fds, so no resource is named; the ruleset is fixed at start' },
    failsOnMissingFile: { no: 'it opens no file' },
    partner: { name: 'dac', missingRole: 'disk' },
    confines: { keys: ['landlock', 'mountView'] },
    describesDisk: { no: 'disks come as fds: the ruleset names no disk path' },
  },
  {
    name: 'selinux',
    skip: skipFiles,
    make: () => new SelinuxDriver({ userspaceTest: true }),
    reserves: true,
    changesFiles: true,
    marksResources: true,
    marked: (_root, label, path) => label.imagelabel !== undefined && selinuxLabelOf(path) === label.imagelabel,
    failsOnMissingFile: true,
    partner: { name: 'dac', missingRole: 'chardev' }, // a socket QEMU will create may be missing for selinux; dac fails on it
    confines: { keys: [], why: 'userspace test mode: this kernel cannot apply an exec context' },
    describesDisk: true,
  },
  {
    name: 'apparmor',
    skip: !root0 ? NEEDS_ROOT : existsSync(PARSER) ? false : `apparmor_parser not installed (looked for ${PARSER})`,
    make: (root) => new AppArmorDriver({ mode: 'compile-only', profileDir: profileDir(root), parser: PARSER }),
    reserves: true,
    changesFiles: { no: 'it labels no files: the profile names them' },
    marksResources: true,
    marked: (root, label, path) => {
      const rules = join(profileDir(root), `${label.label ?? ''}.files`);
      return existsSync(rules) && readFileSync(rules, 'utf8').includes(`"${path}"`);
    },
    failsOnMissingFile: { no: 'a profile rule for a missing file is still a rule: it opens no file' },
    partner: { name: 'dac', missingRole: 'disk' },
    confines: { keys: [], why: 'compile-only: the profile is compiled, this kernel cannot apply it' },
    describesDisk: true,
    // The guest's profile, rules and state files (the shared abstraction stays, as designed).
    state: (root) => {
      const dir = profileDir(root);
      return existsSync(dir)
        ? readdirSync(dir)
            .filter((n) => n !== 'abstractions')
            .sort()
        : [];
    },
  },
];

export function subject(name: DriverName): Subject {
  const s = SUBJECTS.find((x) => x.name === name);
  if (!s) throw new Error(`no conformance subject ${name}`);
  return s;
}

export function reason(c: Capability): string | undefined {
  return c === true ? undefined : c.no;
}
