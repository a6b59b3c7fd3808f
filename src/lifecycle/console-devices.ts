/**
 * The start steps of consoles, channels and displays around QEMU's launch:
 *
 * - before labels (`placeDevices`): a unix channel without a path gets a socket in the
 *   guest's runtime dir (svirt binds it, as for every bound chardev), a socket display gets
 *   `vnc.sock`/`spice.sock` there (QEMU creates it; the runtime dir is the guest's under
 *   every driver), TCP displays get their ports reserved, a display without `<video>` gets
 *   VGA;
 * - after launch (`finishDevices`): each pty QEMU allocated is found with query-chardev,
 *   checked to be a devpts terminal owned by QEMU's uid, labelled for the guest by the
 *   drivers, and written into the live XML (`<source path='/dev/pts/N'/>`, and the alias
 *   console's `tty=`); display passwords are set over QMP (never on QEMU's command line).
 */
import { join } from 'node:path';
import type { GraphicsDef } from '../domain/display-def.js';
import type { ChardevDef, DomainDef } from '../domain/domain-def.js';
import { formatDomainXml, parseXml, serializeXml } from '../domain/index.js';
import { aliasConsole } from '../domain/parse-devices.js';
import { cloneTree, mChildren, mFirst, setAttr, elem, insertOrdered, type MutableElement } from '../domain/xml-tree.js';
import { SvirtError } from '../errors.js';
import { openHandle } from '../host/file-handle.js';
import { processStatus } from '../host/proc.js';
import { chardevSlots } from '../qemu/chardev-argv.js';
import { effectiveVideos } from '../qemu/display-argv.js';
import type { FdLayout, FdSetEntry } from '../qemu/fd-layout.js';
import type { QmpClient } from '../qemu/qmp-client.js';
import type { GuestResource } from '../security/driver.js';
import type { SecurityManager } from '../security/manager.js';
import type { Store } from '../store/store.js';
import { reserveDisplayPorts } from './display-ports.js';
import type { ChardevIo } from './files.js';

/** Where svirt puts a unix channel's socket when the XML gives none (libvirt: per-guest channel dir). */
export function channelSocketPath(runtimeDir: string, c: ChardevDef): string | undefined {
  if (c.element !== 'channel' || c.type !== 'unix' || c.path !== undefined || c.targetName === undefined) return undefined;
  return join(runtimeDir, c.targetName);
}

function placeGraphics(def: DomainDef, g: GraphicsDef, runtimeDir: string): GraphicsDef {
  if (g.listen.type !== 'socket') return g;
  const socket = join(runtimeDir, `${g.type}.sock`);
  if (g.listen.socket !== undefined && g.listen.socket !== socket) {
    // QEMU creates the socket itself: only the guest's own dir is one every driver lets it create in.
    throw new SvirtError(
      'SVIRT_ERR_XML_UNSUPPORTED',
      `domain '${def.name}': a ${g.type} socket at "${g.listen.socket}" is not supported; leave out socket= and svirt places it in the guest's runtime dir`,
    );
  }
  return { ...g, listen: { type: 'socket', socket } };
}

/** The live definition with runtime paths placed, ports reserved and the implicit video added. */
export async function placeDevices(store: Store, def: DomainDef, runtimeDir: string): Promise<DomainDef> {
  const chardevs = def.chardevs.map((c) => {
    const path = channelSocketPath(runtimeDir, c);
    return path === undefined ? c : { ...c, path };
  });
  const graphics = def.graphics?.map((g) => placeGraphics(def, g, runtimeDir));
  const videos = effectiveVideos(def);
  const placed: DomainDef = {
    ...def,
    chardevs,
    ...(graphics ? { graphics } : {}),
    ...(videos.length > 0 ? { videos } : {}),
  };
  return reserveDisplayPorts(store, placed);
}

/** devpts slaves are character devices of majors 136-143 (Documentation/admin-guide/devices.txt). */
export function isPtySlave(rdev: number): boolean {
  const major = Math.floor(rdev / 256) & 0xfff;
  return major >= 136 && major <= 143;
}

/** The pty QEMU allocated for each pty chardev, by index in def.chardevs. */
async function queryPtys(live: DomainDef, qmp: QmpClient): Promise<Map<number, string>> {
  const ptys = chardevSlots(live).filter((s) => s.chardev.type === 'pty');
  const out = new Map<number, string>();
  if (ptys.length === 0) return out;
  const info = (await qmp.execute('query-chardev')) as { label?: string; filename?: string }[];
  for (const s of ptys) {
    const f = info.find((c) => c.label === s.id)?.filename;
    if (f === undefined || !f.startsWith('pty:')) {
      throw new SvirtError('SVIRT_ERR_INTERNAL', `QEMU reports no pty for chardev ${s.id} (${f ?? 'absent'})`);
    }
    out.set(s.index, f.slice('pty:'.length));
  }
  return out;
}

/**
 * Checks each pty is a devpts terminal that QEMU's uid owns (what QEMU made, not a path it
 * named) and has the drivers label it for the guest.
 */
function labelPtys(manager: SecurityManager, live: DomainDef, ptys: ReadonlyMap<number, string>, pid: number): void {
  const uid = Number(processStatus(pid)?.get('Uid')?.split(/\s+/)[1]);
  for (const path of ptys.values()) {
    if (!/^\/dev\/pts\/\d+$/.test(path))
      throw new SvirtError('SVIRT_ERR_PATH_INVALID', `QEMU reports pty "${path}", not under /dev/pts`);
    const h = openHandle(path, 'label the pty');
    try {
      const st = h.current();
      if (!st.isCharacterDevice() || !isPtySlave(st.rdev) || st.uid !== uid) {
        throw new SvirtError('SVIRT_ERR_PATH_INVALID', `"${path}" is not a pty of QEMU's (uid ${st.uid}, QEMU runs as ${uid})`, {
          details: { path },
        });
      }
      manager.setPtyLabel(live, h);
    } finally {
      h.close();
    }
  }
}

/** Sets each display's password over QMP (a secret never in QEMU's argv or log). */
async function setPasswords(live: DomainDef, qmp: QmpClient): Promise<void> {
  for (const g of live.graphics ?? []) {
    if (g.passwd === undefined) continue;
    await qmp.execute('set_password', { protocol: g.type, password: g.passwd });
  }
}

/** Puts each pty's path into the live XML (and the alias console's tty=), as libvirt shows it. */
function withPtyPaths(live: DomainDef, ptys: ReadonlyMap<number, string>): string {
  const xml = formatDomainXml(live);
  if (ptys.size === 0) return xml;
  const root = cloneTree(parseXml(xml));
  const devices = mFirst(root, 'devices');
  if (!devices) return xml;
  const alias = aliasConsole(devices) as MutableElement | undefined;
  const pools = {
    serial: mChildren(devices, 'serial'),
    console: mChildren(devices, 'console').filter((el) => el !== alias),
    channel: mChildren(devices, 'channel'),
  };
  const next = { serial: 0, console: 0, channel: 0 };
  live.chardevs.forEach((c, i) => {
    const el = pools[c.element][next[c.element]++];
    const path = ptys.get(i);
    if (!el || path === undefined) return;
    setSourcePath(el, path);
    if (c.element === 'console') setAttr(el, 'tty', path);
    if (el === pools.serial[0] && alias) {
      setSourcePath(alias, path);
      setAttr(alias, 'tty', path);
    }
  });
  return serializeXml(root);
}

function setSourcePath(el: MutableElement, path: string): void {
  const src = mFirst(el, 'source');
  if (src) setAttr(src, 'path', path);
  else insertOrdered(el, elem('source', [['path', path]]), ['source', 'protocol', 'log', 'target', 'alias', 'address']);
}

/** After launch: ptys found, checked, labelled; passwords set. Returns the live XML. */
export async function finishDevices(manager: SecurityManager, live: DomainDef, qmp: QmpClient, pid: number): Promise<string> {
  const ptys = await queryPtys(live, qmp);
  labelPtys(manager, live, ptys, pid);
  await setPasswords(live, qmp);
  return withPtyPaths(live, ptys);
}

/** QEMU's fdset of each chardev's `<log file>` svirt opened, by index in def.chardevs, after `usedSets`. */
export function chardevLogEntries(
  def: DomainDef,
  io: ReadonlyMap<GuestResource, ChardevIo>,
  layout: FdLayout,
  usedSets: number,
): Map<number, FdSetEntry> {
  const out = new Map<number, FdSetEntry>();
  let set = usedSets;
  for (const [r, x] of io) {
    if (r.logOf === undefined || x.kind !== 'file') continue;
    const index = def.chardevs.indexOf(r.logOf);
    if (index < 0) throw new SvirtError('SVIRT_ERR_INTERNAL', `the log "${r.path}" belongs to no chardev`);
    out.set(index, { fd: layout.add(x.fd), set: ++set, path: r.path, readonly: false });
  }
  return out;
}

/** The highest fdset number the disks, chardevs and pipes took (logs come after it). */
export function usedSets(
  ...lists: ReadonlyArray<Iterable<{ readonly set?: number; readonly fds?: readonly { set: number }[] }>>
): number {
  let max = 0;
  for (const list of lists) {
    for (const e of list) {
      max = Math.max(max, e.set ?? 0, ...(e.fds ?? []).map((f) => f.set));
    }
  }
  return max;
}
