/**
 * Snapshot XML in libvirt's format (`<domainsnapshot>`): what a client asks for
 * (virDomainSnapshotCreateXML, virsh snapshot-create-as) and what svirt keeps and shows.
 * Only what svirt acts on is read; anything it cannot honour is refused, never ignored.
 */
import { SvirtError } from '../../errors.js';
import { parseXml } from '../../domain/xml.js';
import { escapeAttr, escapeText } from '../../domain/xml.js';
import { attr, childElements, textOf } from '../../domain/xml-tree.js';
import type { XmlElement } from '../../domain/domain-def.js';

export type SnapshotKind = 'internal' | 'external';

export interface SnapshotDiskSpec {
  /** The disk's target (vda) or its source path, as libvirt accepts either. */
  readonly name: string;
  readonly snapshot: 'internal' | 'external' | 'no';
  /** External: the new overlay's path. */
  readonly file?: string;
}

export interface SnapshotRequest {
  readonly name?: string;
  readonly description?: string;
  /** `<memory snapshot='no'|'internal'>`. */
  readonly memory?: 'no' | 'internal';
  readonly disks: readonly SnapshotDiskSpec[];
}

/** One disk of a taken snapshot. */
export interface SnapshotDisk {
  readonly name: string;
  readonly snapshot: 'internal' | 'external' | 'no';
  /** External: the overlay made, and the layer it covers. */
  readonly file?: string;
  readonly backing?: string;
  /** Internal: the image that holds the snapshot (an external snapshot may since have put an overlay over it). */
  readonly image?: string;
}

export interface SnapshotRecord {
  readonly name: string;
  readonly description?: string;
  readonly kind: SnapshotKind;
  /** libvirt's state: the guest's when taken, or disk-snapshot for a disk-only one. */
  readonly state: 'running' | 'paused' | 'shutoff' | 'disk-snapshot';
  readonly parent?: string;
  /** Seconds since the epoch. */
  readonly creationTime: number;
  /** Whether the guest's RAM is in it (a live internal snapshot). */
  readonly memory: boolean;
  readonly disks: readonly SnapshotDisk[];
  /** The guest's definition when it was taken. */
  readonly domainXml: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/u;

/** A snapshot name: it becomes a qcow2 tag and part of an overlay's file name. */
export function snapshotNameProblem(name: string): string | undefined {
  return NAME.test(name) ? undefined : 'use 1-64 letters, digits, ".", "_", "+" or "-", starting with a letter or digit';
}

function bad(message: string): SvirtError {
  return new SvirtError('SVIRT_ERR_XML_INVALID', `domain snapshot XML: ${message}`);
}

function only(el: XmlElement, allowed: readonly string[]): void {
  for (const c of childElements(el))
    if (!allowed.includes(c.name)) throw bad(`<${el.name}> has <${c.name}>, which svirt does not support`);
}

/** The request of virDomainSnapshotCreateXML. */
export function parseSnapshotRequest(xml: string): SnapshotRequest {
  const root = parseXml(xml);
  if (root.name !== 'domainsnapshot') throw bad('the root element must be <domainsnapshot>');
  only(root, ['name', 'description', 'memory', 'disks']);
  const one = (n: string) => childElements(root).filter((c) => c.name === n);
  const text = (n: string): string | undefined => {
    const els = one(n);
    if (els.length > 1) throw bad(`more than one <${n}>`);
    return els[0] === undefined ? undefined : textOf(els[0]).trim();
  };
  const name = text('name');
  if (name !== undefined) {
    const problem = snapshotNameProblem(name);
    if (problem !== undefined) throw bad(`name ${JSON.stringify(name)}: ${problem}`);
  }
  const description = text('description');
  const memEl = one('memory')[0];
  let memory: 'no' | 'internal' | undefined;
  if (memEl !== undefined) {
    const m = attr(memEl, 'snapshot');
    if (m !== 'no' && m !== 'internal') throw bad(`<memory snapshot='${m ?? ''}'>: svirt takes 'no' or 'internal'`);
    memory = m;
  }
  const disks: SnapshotDiskSpec[] = [];
  for (const d of one('disks').flatMap((el) => childElements(el))) {
    if (d.name !== 'disk') throw bad(`<disks> has <${d.name}>`);
    const dname = attr(d, 'name');
    if (dname === undefined || dname === '') throw bad('a <disk> without name');
    const snap = attr(d, 'snapshot') ?? (childElements(d).some((c) => c.name === 'source') ? 'external' : undefined);
    if (snap !== 'internal' && snap !== 'external' && snap !== 'no' && snap !== undefined)
      throw bad(`disk '${dname}': snapshot='${snap}' is not internal, external or no`);
    only(d, ['source', 'driver']);
    const driver = childElements(d).find((c) => c.name === 'driver');
    if (driver && (attr(driver, 'type') ?? 'qcow2') !== 'qcow2') throw bad(`disk '${dname}': an overlay is always qcow2`);
    const source = childElements(d).find((c) => c.name === 'source');
    const file = source ? attr(source, 'file') : undefined;
    if (source && file === undefined) throw bad(`disk '${dname}': <source> needs file=`);
    disks.push({ name: dname, snapshot: snap ?? 'external', ...(file === undefined ? {} : { file }) });
  }
  return {
    ...(name === undefined ? {} : { name }),
    ...(description === undefined ? {} : { description }),
    ...(memory === undefined ? {} : { memory }),
    disks,
  };
}

/** The snapshot as virDomainSnapshotGetXMLDesc shows it (the domain's XML inside). */
export function formatSnapshotXml(s: SnapshotRecord, domain: { name: string; uuid: string }): string {
  const lines = ['<domainsnapshot>', `  <name>${escapeText(s.name)}</name>`];
  if (s.description !== undefined) lines.push(`  <description>${escapeText(s.description)}</description>`);
  lines.push(`  <state>${s.state}</state>`);
  if (s.parent !== undefined) lines.push('  <parent>', `    <name>${escapeText(s.parent)}</name>`, '  </parent>');
  lines.push(`  <creationTime>${s.creationTime}</creationTime>`);
  lines.push(`  <memory snapshot='${s.memory ? 'internal' : 'no'}'/>`);
  lines.push('  <disks>');
  for (const d of s.disks) {
    if (d.file === undefined) {
      lines.push(`    <disk name='${escapeAttr(d.name)}' snapshot='${d.snapshot}'/>`);
    } else {
      lines.push(
        `    <disk name='${escapeAttr(d.name)}' snapshot='${d.snapshot}' type='file'>`,
        `      <driver type='qcow2'/>`,
        `      <source file='${escapeAttr(d.file)}'/>`,
        '    </disk>',
      );
    }
  }
  lines.push('  </disks>');
  lines.push(
    ...s.domainXml
      .trimEnd()
      .split('\n')
      .map((l) => `  ${l}`),
  );
  lines.push('</domainsnapshot>');
  void domain;
  return lines.join('\n') + '\n';
}
