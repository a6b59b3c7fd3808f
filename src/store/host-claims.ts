/**
 * Host-wide claims on the identities guests run under. A state dir's store makes a label
 * unique among its own guests (the reservations table's UNIQUE key); two state dirs on one
 * host (a system and a test instance, two users of one machine) share the kernel, so a dac
 * uid, an SELinux level or an AppArmor profile name given to a guest of each would let one
 * guest's QEMU open the other's files. A claim is a file per label in one root-only dir:
 *
 *   CLAIM_DIR/<driver>.<label>      "svirt-claim\n<state dir, real path>\n<uuid>\n"
 *
 * made `O_CREAT|O_EXCL` while the store's write lock is held and the reservation row is in, so
 * within a state dir the store decides (a claim naming this state dir for another guest is
 * stale: this store no longer holds it, and is replaced) and across state dirs the first
 * claim wins. A claim naming another state dir is never taken over, whatever its state: that
 * dir's guests are not this process's to judge. The dir is on /run (tmpfs): nothing survives
 * a reboot, and no guest does either. A claim left behind (a crash between a claim's create
 * and its transaction's commit) only makes its label unavailable to other state dirs; `svirt
 * reconcile` and `svirt serve`'s start remove this state dir's. Identities the host itself shares (uid 0, level s0) protect
 * nothing by being unique among guests and are not claimed. native/svirt-cleanup.c drops
 * claims by the same names.
 */
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { SvirtError, errnoOf } from '../errors.js';
import type { DriverName } from '../security/driver.js';

export const DEFAULT_CLAIM_DIR = '/run/svirt-claims';

/** Drivers whose labels are identities the kernel sees host-wide. */
const CLAIMED: ReadonlySet<string> = new Set(['dac', 'selinux', 'apparmor']);
/** Labels every guest and the host may share (see above). */
const SHARED_WITH_HOST: ReadonlySet<string> = new Set(['dac.0', 'selinux.s0']);
const MAGIC = 'svirt-claim';
const MAX_CLAIM = 4096;
/** An empty claim older than this is not one being written: its maker died between create and write. */
const EMPTY_GRACE_MS = 60_000;

/** The claim dir svirt uses: SVIRT_CLAIM_DIR, else /run/svirt-claims. */
export function claimDirFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const d = env['SVIRT_CLAIM_DIR'];
  return d !== undefined && d !== '' ? d : DEFAULT_CLAIM_DIR;
}

/** A claim file's name: the driver, a dot, the label with every byte outside [A-Za-z0-9._,:+-] as %XX. */
export function claimName(driver: string, label: string): string {
  let out = `${driver}.`;
  for (const b of Buffer.from(label, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9._,:+-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export interface ClaimOwner {
  readonly stateDir: string;
  readonly uuid: string;
}

export type ClaimResult = { readonly ok: true } | { readonly ok: false; readonly holder: string };

export class HostClaims {
  readonly dir: string;
  /** This store's state dir, as a real path (what its claims name). */
  private readonly stateDir: string;
  private checked = false;

  constructor(dir: string, stateDir: string) {
    this.dir = dir;
    this.stateDir = stateDir;
  }

  /** Whether a label of this driver is claimed host-wide at all. */
  static applies(driver: DriverName | string, label: string): boolean {
    return CLAIMED.has(driver) && !SHARED_WITH_HOST.has(`${driver}.${label}`);
  }

  /**
   * Claims `label` for `uuid` of this state dir. The caller holds the store's write lock and
   * the reservation row: a claim naming this state dir for another guest is stale and replaced.
   */
  claim(driver: DriverName, label: string, uuid: string): ClaimResult {
    if (!HostClaims.applies(driver, label)) return { ok: true };
    const path = this.pathOf(driver, label);
    const text = `${MAGIC}\n${this.stateDir}\n${uuid}\n`;
    let held: ClaimOwner | undefined;
    // A claim released between our create and our read is tried again (a few times: fails closed).
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        createWith(path, text);
        return { ok: true };
      } catch (err) {
        if (errnoOf(err) !== 'EEXIST') throw claimError(`cannot claim ${driver} label ${label} in "${this.dir}"`, err);
      }
      held = this.read(path);
      if (held === undefined && !existsSync(path)) continue;
      if (held?.stateDir !== this.stateDir) return { ok: false, holder: describe(held) };
      if (held.uuid !== uuid) this.replace(path, text);
      return { ok: true };
    }
    return { ok: false, holder: describe(held) };
  }

  /** Removes `uuid`'s claim on `label`, if this state dir holds it for that guest. */
  drop(driver: DriverName, label: string, uuid: string): void {
    if (!HostClaims.applies(driver, label)) return;
    const path = this.pathOf(driver, label);
    const held = this.read(path);
    if (held?.stateDir === this.stateDir && held.uuid === uuid) unlinkQuiet(path);
  }

  /** Who holds `label` in another state dir, described for a message; undefined when nobody or this one. */
  foreignHolder(driver: DriverName, label: string): string | undefined {
    if (!HostClaims.applies(driver, label)) return undefined;
    const path = this.pathOf(driver, label);
    if (!existsSync(path)) return undefined;
    const held = this.read(path);
    return held?.stateDir === this.stateDir ? undefined : describe(held);
  }

  /**
   * Removes this state dir's claims that its store no longer backs (`holds(driver, label)`
   * gives the store's holder), and empty claims past their grace. Returns what it removed.
   */
  sweep(holds: (driver: DriverName, label: string) => string | undefined, now = Date.now()): string[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return [];
      throw claimError(`cannot read the claim dir "${this.dir}"`, err);
    }
    const removed: string[] = [];
    for (const name of names) {
      const dot = name.indexOf('.');
      if (dot <= 0) continue;
      const driver = name.slice(0, dot) as DriverName;
      if (!CLAIMED.has(driver)) continue;
      const path = join(this.dir, name);
      const held = this.read(path);
      if (held === undefined) {
        if (this.emptySince(path, now)) {
          unlinkQuiet(path);
          removed.push(name);
        }
        continue;
      }
      if (held.stateDir !== this.stateDir) continue;
      const label = decodeLabel(name.slice(dot + 1));
      if (claimName(driver, label) !== name) continue;
      if (holds(driver, label) === held.uuid) continue;
      unlinkQuiet(path);
      removed.push(name);
    }
    return removed;
  }

  private pathOf(driver: DriverName, label: string): string {
    this.ensureDir();
    const name = claimName(driver, label);
    if (name.length > 255) {
      throw new SvirtError(
        'SVIRT_ERR_LABEL_CONFLICT',
        `cannot claim ${driver} label "${label.slice(0, 40)}…": the name is too long`,
      );
    }
    return join(this.dir, name);
  }

  /** The claim dir exists, is root's and writable by nobody else (else nothing is claimed: fails closed). */
  private ensureDir(): void {
    if (this.checked) return;
    try {
      mkdirSync(this.dir, { mode: 0o700 });
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw claimError(`cannot create the claim dir "${this.dir}"`, err);
    }
    const st = lstatSync(this.dir);
    if (!st.isDirectory() || st.uid !== process.getuid?.() || (st.mode & 0o022) !== 0) {
      throw new SvirtError(
        'SVIRT_ERR_SECURITY_UNAVAILABLE',
        `the claim dir "${this.dir}" is not a directory of this user writable by nobody else: no label can be claimed`,
      );
    }
    this.checked = true;
  }

  /** A claim's owner; undefined for one that is not a whole claim (being written, or not svirt's). */
  private read(path: string): ClaimOwner | undefined {
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return undefined;
      throw claimError(`cannot read the claim "${path}"`, err);
    }
    try {
      if (!fstatSync(fd).isFile()) return undefined;
      const buf = Buffer.alloc(MAX_CLAIM);
      const n = readSync(fd, buf, 0, MAX_CLAIM, 0);
      const lines = buf.toString('utf8', 0, n).split('\n');
      if (lines.length !== 4 || lines[0] !== MAGIC || lines[3] !== '' || !lines[1] || !lines[2]) return undefined;
      return { stateDir: lines[1], uuid: lines[2] };
    } finally {
      closeSync(fd);
    }
  }

  private emptySince(path: string, now: number): boolean {
    try {
      const st = lstatSync(path);
      return st.isFile() && st.size === 0 && now - st.mtimeMs > EMPTY_GRACE_MS;
    } catch {
      return false; // gone meanwhile
    }
  }

  /** A whole claim put in place in one rename. */
  private replace(path: string, text: string): void {
    const tmp = `${path}.${process.pid}.new`;
    unlinkQuiet(tmp);
    createWith(tmp, text);
    renameSync(tmp, path);
  }
}

/** Creates `path` (O_EXCL, no link followed, 0600) holding `text`; throws EEXIST when it is there. */
function createWith(path: string, text: string): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

function describe(held: ClaimOwner | undefined): string {
  return held === undefined ? 'a claim being made (or not svirt’s)' : `${held.uuid} of state dir ${held.stateDir}`;
}

/** claimName's label back; a name claimName would not make (checked by the caller) is left alone. */
function decodeLabel(s: string): string {
  return Buffer.from(
    s.replace(/%([0-9A-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))),
    'latin1',
  ).toString('utf8');
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw claimError(`cannot remove the claim "${path}"`, err);
  }
}

function claimError(what: string, err: unknown): SvirtError {
  return new SvirtError('SVIRT_ERR_SECURITY_UNAVAILABLE', `${what}: ${errnoOf(err) ?? String(err)}`, { cause: err });
}
