/**
 * `metadata`, `desc` (DomainSetMetadata/GetMetadata): the title, the description and
 * applications' own `<metadata>` elements, each in its namespace, as libvirt stores them
 * (`<KEY:el xmlns:KEY="URI">`, every element of it under that prefix). Live (the running
 * guest's XML) and config (the stored definition).
 */
import type { DomainDef, XmlElement } from '../../domain/domain-def.js';
import { parseDomainXml, parseXml, serializeXml } from '../../domain/index.js';
import { cloneTree, elem, insertOrdered, mChildren, mFirst, removeChild, type MutableElement } from '../../domain/xml-tree.js';
import { SvirtError } from '../../errors.js';
import type { LifecycleEnv } from '../env.js';
import type { Guest } from '../guest.js';
import { putConfig, putLive, resolveImpact, type Impact } from './tune.js';

/** virDomainMetadataType */
export const MetadataType = { DESCRIPTION: 0, TITLE: 1, ELEMENT: 2 } as const;

const ORDER = ['name', 'uuid', 'genid', 'title', 'description', 'metadata', 'maxMemory', 'memory'];
const KEY = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

/** libvirt's VIR_ERR_NO_DOMAIN_METADATA (virsh desc reads it as "no description"): details.noMetadata says so. */
function noMetadata(): SvirtError {
  return new SvirtError('SVIRT_ERR_OPERATION_INVALID', 'Requested metadata element is not present', {
    details: { noMetadata: true },
  });
}

/** The namespace prefix an element declares for `uri` (`xmlns:P="uri"`), '' for a default one. */
function prefixFor(el: XmlElement, uri: string): string | undefined {
  for (const [k, v] of el.attrs) {
    if (v !== uri) continue;
    if (k === 'xmlns') return '';
    if (k.startsWith('xmlns:')) return k.slice(6);
  }
  return undefined;
}

function renamed(el: XmlElement, from: string, to: string): MutableElement {
  const strip = (n: string): string => (from !== '' && n.startsWith(`${from}:`) ? n.slice(from.length + 1) : n);
  const name = strip(el.name);
  return {
    kind: 'element',
    name: to === '' ? name : name.includes(':') ? name : `${to}:${name}`,
    attrs: el.attrs.filter(([k]) => k !== 'xmlns' && !k.startsWith('xmlns:')).map(([k, v]) => [k, v] as const),
    children: el.children.map((c) => (c.kind === 'element' ? renamed(c, from, to) : { ...c })),
  };
}

/** The element of `uri` under `<metadata>`, as libvirt returns it: unprefixed, with `xmlns="uri"`. */
function getElement(def: DomainDef, uri: string): string {
  const meta = def.source.children.find((c): c is XmlElement => c.kind === 'element' && c.name === 'metadata');
  for (const c of meta?.children ?? []) {
    if (c.kind !== 'element') continue;
    const p = prefixFor(c, uri);
    if (p === undefined) continue;
    const out = renamed(c, p, '');
    out.attrs.unshift(['xmlns', uri]);
    return serializeXml(out);
  }
  throw noMetadata();
}

function withElement(def: DomainDef, uri: string, key: string | undefined, xml: string | undefined): DomainDef {
  const root = cloneTree(def.source);
  let meta = mFirst(root, 'metadata');
  if (meta) {
    for (const c of mChildren(meta)) if (prefixFor(c, uri) !== undefined) removeChild(meta, c);
  }
  if (xml !== undefined && xml !== '') {
    if (key === undefined || !KEY.test(key))
      throw new SvirtError('SVIRT_ERR_USAGE', `metadata: the key ${JSON.stringify(key ?? '')} is not an XML namespace prefix`);
    const given = parseXml(xml);
    const el = renamed(given, prefixFor(given, uri) ?? '', key);
    el.attrs.unshift([`xmlns:${key}`, uri]);
    if (!meta) {
      meta = elem('metadata');
      insertOrdered(root, meta, ORDER);
    }
    meta.children.push(el);
  }
  if (meta && mChildren(meta).length === 0) removeChild(root, meta);
  return parseDomainXml(serializeXml(root));
}

function getFrom(def: DomainDef, type: number, uri: string | undefined): string {
  switch (type) {
    case MetadataType.DESCRIPTION:
      if (def.description === undefined) throw noMetadata();
      return def.description;
    case MetadataType.TITLE:
      if (def.title === undefined) throw noMetadata();
      return def.title;
    case MetadataType.ELEMENT:
      if (uri === undefined || uri === '')
        throw new SvirtError('SVIRT_ERR_USAGE', 'metadata: an element needs its namespace URI');
      return getElement(def, uri);
    default:
      throw new SvirtError('SVIRT_ERR_USAGE', `metadata: unknown type ${type}`);
  }
}

export function getMetadata(guest: Guest, type: number, uri: string | undefined, impact: Impact): string {
  const { config } = resolveImpact(guest, impact);
  const def = config && guest.stored ? parseDomainXml(guest.stored.xml) : guest.def;
  return getFrom(def, type, uri);
}

export function setMetadata(
  env: LifecycleEnv,
  guest: Guest,
  type: number,
  value: string | undefined,
  key: string | undefined,
  uri: string | undefined,
  impact: Impact,
): void {
  const { live, config } = resolveImpact(guest, impact);
  const change = (d: DomainDef): DomainDef => {
    switch (type) {
      case MetadataType.DESCRIPTION:
      case MetadataType.TITLE: {
        const field = type === MetadataType.TITLE ? 'title' : 'description';
        const { [field]: _old, ...rest } = d;
        return value === undefined || value === '' ? (rest as DomainDef) : { ...d, [field]: value };
      }
      case MetadataType.ELEMENT:
        if (uri === undefined || uri === '')
          throw new SvirtError('SVIRT_ERR_USAGE', 'metadata: an element needs its namespace URI');
        return withElement(d, uri, key, value);
      default:
        throw new SvirtError('SVIRT_ERR_USAGE', `metadata: unknown type ${type}`);
    }
  };
  if (live) putLive(env, guest, change);
  if (config) putConfig(env, guest, change);
}
