/**
 * The start steps of consoles, channels and displays around QEMU's launch:
 *
 * - before labels (`placeDevices`): a unix channel without a path gets a socket in the
 *   guest's runtime dir (svirt binds it, as for every bound chardev), a socket display gets
 *   `vnc.sock`/`spice.sock` there (QEMU creates it; the runtime dir is the guest's under
 *   every driver), TCP displays get their ports reserved, a display without `<video>` gets
 *   VGA;
 * - after launch (`finishDevices`): each pty svirt allocated and labelled (pty-relay.ts) is
 *   written into the live XML (`<source path='/dev/pts/N'/>`, and the alias console's
 *   `tty=`); display passwords are set over QMP (never on QEMU's command line).
 */
import { join } from 'node:path';
import type { GraphicsDef } from '../domain/display-def.js';
import type { ChardevDef, DomainDef } from '../domain/domain-def.js';
import { formatDomainXml, parseXml, serializeXml } from '../domain/index.js';
import { aliasConsole, chardevElements } from '../domain/parse-devices.js';
import { cloneTree, mChildren, mFirst, setAttr, elem, insertOrdered, type MutableElement } from '../domain/xml-tree.js';
import { SvirtError } from '../errors.js';
import { effectiveVideos } from '../qemu/display-argv.js';
import type { FdLayout, FdSetEntry } from '../qemu/fd-layout.js';
import type { QmpClient } from '../qemu/qmp-client.js';
import type { GuestResource } from '../security/driver.js';
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
  const firstSerial = mChildren(devices, 'serial')[0];
  for (const [i, el] of chardevElements(live.chardevs, devices, (tag) => mChildren(devices, tag))) {
    const path = ptys.get(i);
    if (path === undefined) continue;
    setSourcePath(el, path);
    if (live.chardevs[i]?.element === 'console') setAttr(el, 'tty', path);
    if (el === firstSerial && alias) {
      setSourcePath(alias, path);
      setAttr(alias, 'tty', path);
    }
  }
  return serializeXml(root);
}

function setSourcePath(el: MutableElement, path: string): void {
  const src = mFirst(el, 'source');
  if (src) setAttr(src, 'path', path);
  else insertOrdered(el, elem('source', [['path', path]]), ['source', 'protocol', 'log', 'target', 'alias', 'address']);
}

/** After launch: passwords set. Returns the live XML with the pty paths (by chardev index). */
export async function finishDevices(live: DomainDef, qmp: QmpClient, ptys: ReadonlyMap<number, string>): Promise<string> {
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
