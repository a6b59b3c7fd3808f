/**
 * The ptys of serial ports, consoles and channels of type pty. QEMU's own pty backend opens
 * /dev/ptmx and then the new slave, and Landlock checks that open even through TIOCGPTPEER:
 * QEMU would need a right on all of /dev/pts, every other guest's console included. So svirt
 * allocates each pty itself (openPty: /dev/ptmx, unlocked, its slave reached through the
 * master and set raw), the drivers label the slave for the guest (dac: its uid; selinux: its
 * image label), and QEMU gets one end of a socket pair (`-chardev socket,fd=N`) whose other
 * end svirt-monitor relays to the master (native/svirt-monitor.c, --relay). QEMU opens nothing
 * under /dev/pts and no driver grants it /dev/ptmx or /dev/pts.
 *
 * The live XML shows `/dev/pts/N`; `svirt console` opens it only while the guest's monitor
 * still holds its master (/proc/<monitor>/fdinfo: `tty-index: N`), so a number the host has
 * since given to another terminal is never opened.
 */
import { closeSync, lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import type { DomainDef } from '../domain/domain-def.js';
import { parseXml } from '../domain/index.js';
import { chardevElements } from '../domain/parse-devices.js';
import { attr, childElements, firstChild } from '../domain/xml-tree.js';
import { SvirtError, errnoOf } from '../errors.js';
import { FileHandle } from '../host/file-handle.js';
import { openPty, socketpair } from '../host/native.js';
import { withSocketLabel } from '../host/selinux-socket.js';
import { chardevSlots } from '../qemu/chardev-argv.js';
import type { FdLayout, FdSetEntry } from '../qemu/fd-layout.js';
import type { OpenFiles } from './files.js';

/** svirt-monitor relays at most this many ptys per guest (MAX_RELAYS in svirt-monitor.c). */
export const MAX_PTYS = 16;

/** One pty svirt allocated for a chardev. */
export interface AllocatedPty {
  /** Index in def.chardevs. */
  readonly index: number;
  /** `/dev/pts/N`. */
  readonly path: string;
  /** svirt's fds: the master and the monitor's end of QEMU's socket (the monitor relays them). */
  readonly master: number;
  readonly monitorEnd: number;
  /** QEMU's end of the socket. */
  readonly qemuEnd: number;
}

/** devpts slaves are character devices of majors 136-143 (Documentation/admin-guide/devices.txt). */
export function isPtySlave(rdev: number): boolean {
  const major = Math.floor(rdev / 256) & 0xfff;
  return major >= 136 && major <= 143;
}

/** The device number of /dev/pts/N (major 136 + N / 256, minor N % 256, in Linux's encoding). */
function ptyRdev(n: number): number {
  const major = 136 + Math.floor(n / 256);
  const minor = n % 256;
  return (major << 8) | minor;
}

/**
 * Allocates a pty for every pty chardev of `live`, labels its slave for the guest and closes
 * the slave again (the master hangs up until a reader opens it: the monitor drops output until
 * then). Every fd is registered in `files` (closed once QEMU and its monitor have theirs).
 */
export function allocatePtys(live: DomainDef, files: OpenFiles, socketLabel: string | undefined): AllocatedPty[] {
  const slots = chardevSlots(live).filter((s) => s.chardev.type === 'pty');
  if (slots.length > MAX_PTYS) {
    throw new SvirtError(
      'SVIRT_ERR_XML_UNSUPPORTED',
      `domain '${live.name}' has ${slots.length} pty devices; svirt relays at most ${MAX_PTYS} per guest`,
    );
  }
  const out: AllocatedPty[] = [];
  for (const s of slots) {
    let pair;
    try {
      pair = openPty();
    } catch (err) {
      throw new SvirtError(
        'SVIRT_ERR_HOST',
        `cannot allocate a pty for the ${s.alias} of '${live.name}': ${errnoOf(err) ?? String(err)}`,
        {
          cause: err,
        },
      );
    }
    files.fd(pair.master);
    const path = `/dev/pts/${pair.index}`;
    let slave: FileHandle;
    try {
      slave = new FileHandle(pair.slave, path);
    } catch (err) {
      closeSync(pair.slave);
      throw err;
    }
    try {
      checkPtyPath(slave, path);
      // No guest opens it (QEMU has the socket, the monitor the master): it stays svirt's own,
      // 0600, with the label svirt's own process gives it; no driver grants it to any guest.
      slave.setOwner(process.getuid?.() ?? 0, process.getgid?.() ?? 0, 0o600);
    } finally {
      slave.close();
    }
    // QEMU's end carries the guest's socket label (SELinux), like the sockets svirt binds for it.
    const [monitorEnd, qemuEnd] = withSocketLabel(socketLabel, () => socketpair());
    files.fd(monitorEnd);
    files.fd(qemuEnd);
    out.push({ index: s.index, path, master: pair.master, monitorEnd, qemuEnd });
  }
  return out;
}

/** The path the live XML will show must name this very pty in svirt's own view of /dev/pts. */
function checkPtyPath(slave: FileHandle, path: string): void {
  const mine = slave.stats;
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    throw new SvirtError('SVIRT_ERR_HOST', `the pty svirt allocated is not at "${path}": ${errnoOf(err) ?? String(err)}`, {
      cause: err,
    });
  }
  if (!mine.isCharacterDevice() || !isPtySlave(mine.rdev) || st.dev !== mine.dev || st.ino !== mine.ino) {
    throw new SvirtError(
      'SVIRT_ERR_HOST',
      `"${path}" is not the pty svirt allocated (/dev/ptmx and /dev/pts are different devpts instances here)`,
      { details: { path } },
    );
  }
}

/** Adds QEMU's socket end of each pty to the chardev fds (a plain fd, no fdset). */
export function addPtyFds(ptys: readonly AllocatedPty[], layout: FdLayout, chardevFds: Map<number, FdSetEntry>): void {
  for (const p of ptys) chardevFds.set(p.index, { fd: layout.add(p.qemuEnd), set: 0, path: p.path, readonly: false });
}

/** What svirt-monitor relays: each master with the monitor's end of QEMU's socket. */
export function ptyRelays(ptys: readonly AllocatedPty[]): { pty: number; sock: number }[] {
  return ptys.map((p) => ({ pty: p.master, sock: p.monitorEnd }));
}

/** The pty paths by chardev index. */
export function ptyPaths(ptys: readonly AllocatedPty[]): Map<number, string> {
  return new Map(ptys.map((p) => [p.index, p.path]));
}

/** `svirt profile`: one line per pty chardev, saying who allocates it and what each driver of `stack` does. */
export function ptyDryRun(def: DomainDef, stack: readonly string[]): string[] {
  const does = ["svirt's own, 0600, label unchanged: no driver grants it to the guest"];
  if (stack.includes('apparmor') || stack.includes('landlock')) does.push('apparmor/landlock: no /dev/ptmx or /dev/pts rule');
  return chardevSlots(def)
    .filter((s) => s.chardev.type === 'pty')
    .map(
      (s) =>
        `${s.alias}: /dev/pts/N allocated by svirt, relayed by svirt-monitor; QEMU gets a socket` +
        (does.length > 0 ? ` (${does.join('; ')})` : ''),
    );
}

/** The `<source path>` the live XML shows for each pty chardev, by index in def.chardevs. */
export function livePtyPaths(def: DomainDef, liveXml: string): Map<number, string> {
  const out = new Map<number, string>();
  const devices = firstChild(parseXml(liveXml), 'devices');
  if (!devices) return out;
  for (const [i, el] of chardevElements(def.chardevs, devices, (tag) => childElements(devices, tag))) {
    const src = firstChild(el, 'source');
    const path = src ? attr(src, 'path') : undefined;
    if (def.chardevs[i]?.type === 'pty' && path !== undefined) out.set(i, path);
  }
  return out;
}

/**
 * Checks that `path` is the pty whose master the guest's monitor holds: a devpts slave
 * `/dev/pts/N` of that number, and an fd of one of `holders` (the monitor; QEMU for a guest
 * started before svirt relayed ptys) on /dev/ptmx with `tty-index: N`.
 * Anything else (the monitor gone, the number reused by another terminal) is refused.
 */
export function checkRelayedPty(path: string, holders: readonly (number | null)[], name: string): void {
  const m = /^\/dev\/pts\/(\d{1,7})$/.exec(path);
  if (!m) throw new SvirtError('SVIRT_ERR_PATH_INVALID', `"${path}" is not a pty path`);
  const n = Number(m[1]);
  // QEMU itself holds the master of a guest started before svirt relayed ptys (its own pty backend).
  if (!holders.some((pid) => pid !== null && holdsMaster(pid, n))) {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `the monitor of '${name}' no longer holds "${path}" (it ended: the guest's ptys went with it)`,
      { details: { path } },
    );
  }
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (!st?.isCharacterDevice() || st.rdev !== ptyRdev(n)) {
    throw new SvirtError('SVIRT_ERR_PATH_INVALID', `"${path}" is not pty ${n}`, { details: { path } });
  }
}

function holdsMaster(pid: number, n: number): boolean {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false; // the monitor is gone
  }
  for (const fd of fds) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (target !== '/dev/ptmx' && target !== '/dev/pts/ptmx') continue;
      const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
      if (new RegExp(`^tty-index:\\s*${n}$`, 'm').test(info)) return true;
    } catch {
      // closed between readdir and here: not this one
    }
  }
  return false;
}
