/**
 * libvirt storage pool and volume XML ↔ svirt's definitions, for pools of type `dir` and
 * volumes of the declared formats `raw` and `qcow2`. What svirt does not do (another pool
 * type, a backing store, encryption, another format) is refused with the element and its
 * line, never dropped.
 */
import { SvirtError } from '../errors.js';
import { canonicalUuid, parseXml, pathProblem, unitBytes, type XmlElement } from '../domain/index.js';
import { escapeAttr, escapeText } from '../domain/xml.js';
import { attr, childElements, textOf } from '../domain/xml-tree.js';
import { randomUuid } from '../host/random.js';

/** The formats svirt writes and declares; a volume's format is never read from its content. */
export const VOLUME_FORMATS = ['raw', 'qcow2'] as const;
export type VolumeFormat = (typeof VOLUME_FORMATS)[number];

export interface PoolDef {
  readonly name: string;
  readonly uuid: string;
  /** The directory the pool's volumes are files of (absolute, no `..`). */
  readonly path: string;
  /** `<permissions>` of the directory, used by pool-build. */
  readonly mode?: number;
  readonly owner?: number;
  readonly group?: number;
}

export interface VolumeSpec {
  readonly name: string;
  readonly capacity: number;
  readonly format: VolumeFormat;
  /** `<features><lazy_refcounts/>` of a qcow2 volume. */
  readonly lazyRefcounts: boolean;
}

function where(el: XmlElement): string {
  return el.line === undefined ? `<${el.name}>` : `<${el.name}> at line ${el.line}`;
}

function invalid(what: string, el: XmlElement, why: string): SvirtError {
  return new SvirtError('SVIRT_ERR_XML_INVALID', `invalid ${what} XML: ${where(el)}: ${why}`, { details: { element: el.name } });
}

function unsupported(what: string, el: XmlElement, why: string): SvirtError {
  return new SvirtError('SVIRT_ERR_XML_UNSUPPORTED', `unsupported ${what} XML: ${where(el)}: ${why}`, {
    details: { element: el.name },
  });
}

function one(what: string, parent: XmlElement, name: string): XmlElement | undefined {
  const all = childElements(parent, name);
  if (all[1]) throw invalid(what, all[1], `more than one <${name}>`);
  return all[0];
}

function only(what: string, el: XmlElement, allowed: readonly string[]): void {
  for (const c of childElements(el))
    if (!allowed.includes(c.name)) throw unsupported(what, c, `<${c.name}> in <${el.name}> is not supported by svirt`);
}

/** Why `name` cannot name a pool or a volume (it becomes a file name), or undefined. */
export function objectNameProblem(name: string): string | undefined {
  if (name === '') return 'it is empty';
  if (Buffer.byteLength(name) > 255) return 'it is longer than 255 bytes';
  if (name === '.' || name === '..') return `it is ${JSON.stringify(name)}`;
  if (name.includes('/')) return "it contains '/'";
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'it contains a control character';
  return undefined;
}

function nameOf(what: string, root: XmlElement): string {
  const el = one(what, root, 'name');
  if (!el) throw invalid(what, root, 'missing <name>');
  const name = textOf(el).trim();
  const problem = objectNameProblem(name);
  if (problem !== undefined) throw invalid(what, el, `name ${JSON.stringify(name)} is not allowed: ${problem}`);
  return name;
}

/** `<capacity unit='G'>1</capacity>` in bytes (libvirt's units; bytes by default). */
function bytesOf(what: string, el: XmlElement): number {
  const unit = attr(el, 'unit') ?? 'bytes';
  const scale = unitBytes(unit);
  if (scale === undefined) throw invalid(what, el, `unit=${JSON.stringify(unit)} is not a unit`);
  const t = textOf(el).trim();
  if (!/^[0-9]{1,20}$/.test(t)) throw invalid(what, el, `${JSON.stringify(t)} is not a non-negative integer`);
  const v = BigInt(t) * scale;
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(what, el, `${t} ${unit} is too large`);
  return Number(v);
}

function octal(what: string, el: XmlElement, max: number): number {
  const t = textOf(el).trim();
  if (!/^0?[0-7]{1,4}$/.test(t)) throw invalid(what, el, `${JSON.stringify(t)} is not an octal mode`);
  const v = parseInt(t, 8);
  if (v > max) throw invalid(what, el, `${t} is out of range`);
  return v;
}

function id(what: string, el: XmlElement): number | undefined {
  const t = textOf(el).trim();
  if (t === '-1' || t === '') return undefined;
  if (!/^[0-9]{1,10}$/.test(t) || Number(t) > 0xfffffffe) throw invalid(what, el, `${JSON.stringify(t)} is not a uid/gid`);
  return Number(t);
}

/** A `<pool type='dir'>` definition; `uuid` is generated when absent. */
export function parsePoolXml(xml: string): PoolDef {
  const W = 'storage pool';
  const root = parseXml(xml);
  if (root.name !== 'pool') throw invalid(W, root, 'the root element must be <pool>');
  const type = attr(root, 'type');
  if (type !== 'dir') {
    throw unsupported(
      W,
      root,
      `pool type ${JSON.stringify(type ?? '')}: svirt runs pools of type 'dir' (a directory of image files)`,
    );
  }
  only(W, root, ['name', 'uuid', 'capacity', 'allocation', 'available', 'source', 'target']);
  const name = nameOf(W, root);
  const uuidEl = one(W, root, 'uuid');
  let uuid = randomUuid();
  if (uuidEl) {
    const u = canonicalUuid(textOf(uuidEl));
    if (u === undefined) throw invalid(W, uuidEl, `${JSON.stringify(textOf(uuidEl))} is not a uuid`);
    uuid = u;
  }
  const source = one(W, root, 'source');
  if (source) only(W, source, []);
  const target = one(W, root, 'target');
  if (!target) throw invalid(W, root, 'missing <target>');
  only(W, target, ['path', 'permissions']);
  const pathEl = one(W, target, 'path');
  if (!pathEl) throw invalid(W, target, 'missing <path>');
  const raw = textOf(pathEl).trim();
  const problem = pathProblem(raw);
  if (problem !== undefined) throw invalid(W, pathEl, `path ${JSON.stringify(raw)}: ${problem}`);
  if (raw.split('/').some((c) => c === '..' || c === '.')) throw invalid(W, pathEl, `path ${JSON.stringify(raw)} has . or ..`);
  const path = raw.length > 1 ? raw.replace(/\/+$/, '').replace(/\/{2,}/g, '/') : raw;
  if (path === '/') throw invalid(W, pathEl, 'the root directory cannot be a pool');
  const perms = one(W, target, 'permissions');
  let mode: number | undefined;
  let owner: number | undefined;
  let group: number | undefined;
  if (perms) {
    only(W, perms, ['mode', 'owner', 'group', 'label']);
    const m = one(W, perms, 'mode');
    const o = one(W, perms, 'owner');
    const g = one(W, perms, 'group');
    if (m) mode = octal(W, m, 0o777);
    if (o) owner = id(W, o);
    if (g) group = id(W, g);
  }
  return {
    name,
    uuid,
    path,
    ...(mode === undefined ? {} : { mode }),
    ...(owner === undefined ? {} : { owner }),
    ...(group === undefined ? {} : { group }),
  };
}

/** The pool's XML as pool-dumpxml shows it, with its sizes (those of the filesystem it is on). */
export function formatPoolXml(p: PoolDef, sizes?: { capacity: number; allocation: number; available: number }): string {
  const perm =
    p.mode === undefined && p.owner === undefined && p.group === undefined
      ? ''
      : `    <permissions>\n${p.mode === undefined ? '' : `      <mode>0${p.mode.toString(8)}</mode>\n`}${
          p.owner === undefined ? '' : `      <owner>${p.owner}</owner>\n`
        }${p.group === undefined ? '' : `      <group>${p.group}</group>\n`}    </permissions>\n`;
  const s = sizes ?? { capacity: 0, allocation: 0, available: 0 };
  return (
    `<pool type='dir'>\n  <name>${escapeText(p.name)}</name>\n  <uuid>${p.uuid}</uuid>\n` +
    `  <capacity unit='bytes'>${s.capacity}</capacity>\n  <allocation unit='bytes'>${s.allocation}</allocation>\n` +
    `  <available unit='bytes'>${s.available}</available>\n  <source>\n  </source>\n` +
    `  <target>\n    <path>${escapeText(p.path)}</path>\n${perm}  </target>\n</pool>\n`
  );
}

/** A `<volume>` to create (vol-create, vol-create-as, virt-install --disk size=N). */
export function parseVolumeXml(xml: string): VolumeSpec {
  const W = 'storage volume';
  const root = parseXml(xml);
  if (root.name !== 'volume') throw invalid(W, root, 'the root element must be <volume>');
  const type = attr(root, 'type');
  if (type !== undefined && type !== 'file')
    throw unsupported(W, root, `volume type ${JSON.stringify(type)}: a dir pool has files`);
  only(W, root, ['name', 'key', 'source', 'capacity', 'allocation', 'physical', 'target']);
  const backing = childElements(root, 'backingStore')[0];
  if (backing) throw unsupported(W, backing, 'backing stores');
  const name = nameOf(W, root);
  const capEl = one(W, root, 'capacity');
  if (!capEl) throw invalid(W, root, 'missing <capacity>');
  const capacity = bytesOf(W, capEl);
  const alloc = one(W, root, 'allocation');
  if (alloc) bytesOf(W, alloc); // checked; volumes are sparse (see docs/storage.md)
  let format: VolumeFormat = 'raw';
  let lazyRefcounts = false;
  const target = one(W, root, 'target');
  if (target) {
    only(W, target, ['path', 'format', 'permissions', 'compat', 'features', 'timestamps']);
    const f = one(W, target, 'format');
    if (f) {
      const t = attr(f, 'type') ?? '';
      if (!(VOLUME_FORMATS as readonly string[]).includes(t)) {
        throw unsupported(W, f, `format ${JSON.stringify(t)}: svirt creates raw and qcow2 volumes`);
      }
      format = t as VolumeFormat;
    }
    const compat = one(W, target, 'compat');
    if (compat && !['1.1', '0.10'].includes(textOf(compat).trim())) throw unsupported(W, compat, 'qcow2 compat 1.1 or 0.10');
    const features = one(W, target, 'features');
    if (features) {
      only(W, features, ['lazy_refcounts']);
      lazyRefcounts = childElements(features, 'lazy_refcounts').length > 0;
    }
  }
  if (format === 'qcow2' && capacity === 0) throw invalid(W, capEl, 'a qcow2 volume needs a capacity');
  return { name, capacity, format, lazyRefcounts };
}

export interface VolumeFacts {
  readonly name: string;
  readonly path: string;
  readonly format: VolumeFormat;
  readonly capacity: number;
  readonly allocation: number;
  readonly physical: number;
  readonly mode: number;
  readonly owner: number;
  readonly group: number;
}

export function formatVolumeXml(v: VolumeFacts): string {
  return (
    `<volume type='file'>\n  <name>${escapeText(v.name)}</name>\n  <key>${escapeText(v.path)}</key>\n` +
    `  <source>\n  </source>\n  <capacity unit='bytes'>${v.capacity}</capacity>\n` +
    `  <allocation unit='bytes'>${v.allocation}</allocation>\n  <physical unit='bytes'>${v.physical}</physical>\n` +
    `  <target>\n    <path>${escapeText(v.path)}</path>\n    <format type='${escapeAttr(v.format)}'/>\n` +
    `    <permissions>\n      <mode>0${v.mode.toString(8)}</mode>\n      <owner>${v.owner}</owner>\n` +
    `      <group>${v.group}</group>\n    </permissions>\n  </target>\n</volume>\n`
  );
}
