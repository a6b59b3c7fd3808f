/**
 * `<memtune>`, `<cputune>` and `<blkiotune>` of a domain, as the guest's cgroup applies them
 * (src/lifecycle/cgroup/). Read from the kept XML tree (`def.source`), validated with
 * libvirt's ranges; anything else in these elements (vcpupin, emulatorpin, ...) is kept by
 * the round trip and not applied.
 */
import type { XmlElement } from './domain-def.js';
import { unitBytes } from './parse-domain-xml.js';
import { invalid, quote, single } from './parse-util.js';
import { attr, childElements, textOf } from './xml-tree.js';

export interface MemTune {
  readonly hardLimitKiB?: number;
  readonly softLimitKiB?: number;
  /** memory + swap */
  readonly swapHardLimitKiB?: number;
}

export interface CpuTune {
  /** v1 cpu.shares [2, 262144]; v2 cpu.weight takes it as is, [1, 10000] (libvirt does the same). */
  readonly shares?: number;
  /** µs, [1000, 1000000] */
  readonly period?: number;
  /** µs, [1000, 17592186044415], or -1 for no limit */
  readonly quota?: number;
}

export interface BlkioDeviceTune {
  readonly path: string;
  readonly weight?: number;
  readonly readBytesSec?: number;
  readonly writeBytesSec?: number;
  readonly readIopsSec?: number;
  readonly writeIopsSec?: number;
}

export interface BlkioTune {
  /** [100, 1000] (v1 blkio.weight; v2 io.weight takes it as is) */
  readonly weight?: number;
  readonly devices: readonly BlkioDeviceTune[];
}

export interface TuneDef {
  readonly memory: MemTune;
  readonly cpu: CpuTune;
  readonly blkio: BlkioTune;
}

/** Whether the definition asks for any limit (an empty TuneDef applies only svirt's own). */
export function hasTuning(t: TuneDef): boolean {
  return (
    Object.keys(t.memory).length + Object.keys(t.cpu).length > 0 || t.blkio.weight !== undefined || t.blkio.devices.length > 0
  );
}

export function parseTune(domain: XmlElement): TuneDef {
  return {
    memory: memtune(single(domain, 'memtune')),
    cpu: cputune(single(domain, 'cputune')),
    blkio: blkiotune(single(domain, 'blkiotune')),
  };
}

function memtune(el: XmlElement | undefined): MemTune {
  if (!el) return {};
  const kib = (name: string): number | undefined => {
    const c = single(el, name);
    return c ? sizeKiB(c) : undefined;
  };
  const out = { hardLimitKiB: kib('hard_limit'), softLimitKiB: kib('soft_limit'), swapHardLimitKiB: kib('swap_hard_limit') };
  if (out.swapHardLimitKiB !== undefined && out.hardLimitKiB !== undefined && out.swapHardLimitKiB < out.hardLimitKiB)
    throw invalid(el, 'swap_hard_limit must be at least hard_limit');
  return defined<MemTune>(out);
}

function cputune(el: XmlElement | undefined): CpuTune {
  if (!el) return {};
  const num = (name: string, lo: number, hi: number, minusOne = false): number | undefined => {
    const c = single(el, name);
    if (!c) return undefined;
    const t = textOf(c).trim();
    if (minusOne && t === '-1') return -1;
    if (!/^[0-9]{1,17}$/.test(t) || Number(t) < lo || Number(t) > hi)
      throw invalid(c, `${quote(t)} is not in [${lo}, ${hi}]${minusOne ? ' or -1' : ''}`, { value: t });
    return Number(t);
  };
  return defined<CpuTune>({
    shares: num('shares', 1, 262144),
    period: num('period', 1000, 1000000),
    quota: num('quota', 1000, 17592186044415, true),
  });
}

function blkiotune(el: XmlElement | undefined): BlkioTune {
  if (!el) return { devices: [] };
  const num = (parent: XmlElement, name: string, lo: number, hi: number): number | undefined => {
    const c = single(parent, name);
    if (!c) return undefined;
    const t = textOf(c).trim();
    if (!/^[0-9]{1,17}$/.test(t) || Number(t) < lo || Number(t) > hi)
      throw invalid(c, `${quote(t)} is not in [${lo}, ${hi}]`, { value: t });
    return Number(t);
  };
  const devices = childElements(el, 'device').map((d): BlkioDeviceTune => {
    const p = single(d, 'path');
    const path = p ? textOf(p).trim() : '';
    if (!path.startsWith('/dev/') || /[\0\n]|\/\.\.?(\/|$)/.test(path))
      throw invalid(d, `path ${quote(path)} is not a device under /dev`);
    const max = Number.MAX_SAFE_INTEGER;
    return defined<BlkioDeviceTune>({
      path,
      weight: num(d, 'weight', 100, 1000),
      readBytesSec: num(d, 'read_bytes_sec', 1, max),
      writeBytesSec: num(d, 'write_bytes_sec', 1, max),
      readIopsSec: num(d, 'read_iops_sec', 1, max),
      writeIopsSec: num(d, 'write_iops_sec', 1, max),
    });
  });
  const weight = num(el, 'weight', 100, 1000);
  return weight === undefined ? { devices } : { weight, devices };
}

function sizeKiB(el: XmlElement): number {
  const unit = attr(el, 'unit') ?? 'KiB';
  const scale = unitBytes(unit);
  if (scale === undefined) throw invalid(el, `unit=${quote(unit)} is not a unit`, { unit });
  const t = textOf(el).trim();
  if (!/^[0-9]{1,30}$/.test(t)) throw invalid(el, `${quote(t)} is not a non-negative integer`, { value: t });
  const kib = (BigInt(t) * scale + 1023n) / 1024n;
  if (kib === 0n || kib > BigInt(Number.MAX_SAFE_INTEGER) / 1024n)
    throw invalid(el, `${t} ${unit} is out of range`, { value: t });
  return Number(kib);
}

/** The object without its undefined members (optional properties are absent, never undefined). */
function defined<R>(o: { [K in keyof R]-?: R[K] | undefined }): R {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as R;
}
