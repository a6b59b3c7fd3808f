/**
 * What a guest's cgroup holds, as control-file writes per hierarchy: `<memtune>`,
 * `<cputune>`, `<blkiotune>` and svirt's pids limit, in v1 and v2 spelling. Pure: the
 * writes are planned here and made by guest-cgroup.ts, and `svirt profile` prints the plan.
 */
import { statSync } from 'node:fs';
import type { TuneDef } from '../../domain/tune.js';
import { SvirtError } from '../../errors.js';
import type { GuestController } from './layout.js';

/** One write: `file` in the guest's cgroup of `controller` (v1) or in its v2 cgroup. */
export interface ControlWrite {
  readonly version: 1 | 2;
  /** v1: the controller whose hierarchy holds the file; v2: the controller that must be enabled */
  readonly controller: GuestController | 'io';
  readonly file: string;
  readonly value: string;
  /** What it applies, for profile and errors: `memtune hard_limit` */
  readonly from: string;
}

/** svirt's pids limit for a guest (QEMU's threads count: vCPUs, I/O workers, helpers). */
export const DEFAULT_PIDS_MAX = 1024;

export function pidsMax(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.SVIRT_CGROUP_PIDS_MAX;
  if (raw === undefined || raw === '') return DEFAULT_PIDS_MAX;
  if (!/^[0-9]{1,7}$/.test(raw) || Number(raw) < 16)
    throw new SvirtError('SVIRT_ERR_CGROUP', `SVIRT_CGROUP_PIDS_MAX=${JSON.stringify(raw)} is not a number of at least 16`);
  return Number(raw);
}

/** A device path's "MAJOR:MINOR" (a block device for blkiotune). */
export type DeviceNumber = (path: string) => string;

export function blockDeviceNumber(path: string): string {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    throw new SvirtError('SVIRT_ERR_CGROUP', `blkiotune device "${path}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (!st.isBlockDevice()) throw new SvirtError('SVIRT_ERR_CGROUP', `blkiotune device "${path}" is not a block device`);
  return `${Math.floor(st.rdev / 256) & 0xfff}:${(st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)}`;
}

const KiB = 1024;

/** The writes for v1 hierarchies (`memory`, `pids`, `cpu`, `blkio`). */
export function v1Writes(t: TuneDef, pids: number, devno: DeviceNumber): ControlWrite[] {
  const w: ControlWrite[] = [];
  const add = (controller: GuestController, file: string, value: number | string, from: string): void => {
    w.push({ version: 1, controller, file, value: String(value), from });
  };
  const m = t.memory;
  if (m.hardLimitKiB !== undefined) add('memory', 'memory.limit_in_bytes', m.hardLimitKiB * KiB, 'memtune hard_limit');
  if (m.softLimitKiB !== undefined) add('memory', 'memory.soft_limit_in_bytes', m.softLimitKiB * KiB, 'memtune soft_limit');
  if (m.swapHardLimitKiB !== undefined)
    add('memory', 'memory.memsw.limit_in_bytes', m.swapHardLimitKiB * KiB, 'memtune swap_hard_limit');
  add('pids', 'pids.max', pids, 'svirt pids limit');
  const c = t.cpu;
  if (c.shares !== undefined) add('cpu', 'cpu.shares', Math.max(2, c.shares), 'cputune shares');
  if (c.period !== undefined) add('cpu', 'cpu.cfs_period_us', c.period, 'cputune period');
  if (c.quota !== undefined) add('cpu', 'cpu.cfs_quota_us', c.quota, 'cputune quota');
  const b = t.blkio;
  if (b.weight !== undefined) add('blkio', 'blkio.bfq.weight', b.weight, 'blkiotune weight');
  for (const d of b.devices) {
    const n = devno(d.path);
    if (d.weight !== undefined) add('blkio', 'blkio.bfq.weight_device', `${n} ${d.weight}`, `blkiotune ${d.path} weight`);
    if (d.readBytesSec !== undefined)
      add('blkio', 'blkio.throttle.read_bps_device', `${n} ${d.readBytesSec}`, `blkiotune ${d.path} read_bytes_sec`);
    if (d.writeBytesSec !== undefined)
      add('blkio', 'blkio.throttle.write_bps_device', `${n} ${d.writeBytesSec}`, `blkiotune ${d.path} write_bytes_sec`);
    if (d.readIopsSec !== undefined)
      add('blkio', 'blkio.throttle.read_iops_device', `${n} ${d.readIopsSec}`, `blkiotune ${d.path} read_iops_sec`);
    if (d.writeIopsSec !== undefined)
      add('blkio', 'blkio.throttle.write_iops_device', `${n} ${d.writeIopsSec}`, `blkiotune ${d.path} write_iops_sec`);
  }
  return w;
}

/**
 * The writes for a v2 cgroup. libvirt's mapping: soft_limit → memory.high, swap_hard_limit
 * (memory + swap) → memory.swap.max as its excess over hard_limit, shares → cpu.weight as is
 * ([1, 10000] there), period/quota → cpu.max, weights → io.bfq.weight, throttles → io.max.
 */
export function v2Writes(t: TuneDef, pids: number, devno: DeviceNumber): ControlWrite[] {
  const w: ControlWrite[] = [];
  const add = (controller: GuestController | 'io', file: string, value: number | string, from: string): void => {
    w.push({ version: 2, controller, file, value: String(value), from });
  };
  const m = t.memory;
  if (m.hardLimitKiB !== undefined) add('memory', 'memory.max', m.hardLimitKiB * KiB, 'memtune hard_limit');
  if (m.softLimitKiB !== undefined) add('memory', 'memory.high', m.softLimitKiB * KiB, 'memtune soft_limit');
  if (m.swapHardLimitKiB !== undefined) {
    if (m.hardLimitKiB === undefined)
      throw new SvirtError(
        'SVIRT_ERR_CGROUP',
        'memtune swap_hard_limit needs hard_limit on cgroup v2 (memory.swap.max counts swap alone)',
      );
    add('memory', 'memory.swap.max', (m.swapHardLimitKiB - m.hardLimitKiB) * KiB, 'memtune swap_hard_limit');
  }
  add('pids', 'pids.max', pids, 'svirt pids limit');
  const c = t.cpu;
  if (c.shares !== undefined) {
    if (c.shares > 10000)
      throw new SvirtError('SVIRT_ERR_CGROUP', `cputune shares ${c.shares} is above cgroup v2's cpu.weight maximum 10000`);
    add('cpu', 'cpu.weight', c.shares, 'cputune shares');
  }
  if (c.period !== undefined || c.quota !== undefined) {
    const quota = c.quota === undefined || c.quota === -1 ? 'max' : String(c.quota);
    add('cpu', 'cpu.max', `${quota} ${c.period ?? 100000}`, 'cputune period/quota');
  }
  const b = t.blkio;
  if (b.weight !== undefined) add('io', 'io.bfq.weight', b.weight, 'blkiotune weight');
  for (const d of b.devices) {
    const n = devno(d.path);
    if (d.weight !== undefined) add('io', 'io.bfq.weight', `${n} ${d.weight}`, `blkiotune ${d.path} weight`);
    const limits = [
      ['rbps', d.readBytesSec],
      ['wbps', d.writeBytesSec],
      ['riops', d.readIopsSec],
      ['wiops', d.writeIopsSec],
    ].filter(([, v]) => v !== undefined);
    if (limits.length > 0)
      add('io', 'io.max', `${n} ${limits.map(([k, v]) => `${k}=${v}`).join(' ')}`, `blkiotune ${d.path} throttles`);
  }
  return w;
}
