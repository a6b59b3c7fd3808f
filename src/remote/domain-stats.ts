/**
 * A running guest's statistics for the remote protocol (issue 14: dommemstat, domblkstat,
 * domblkinfo, vcpuinfo, domstats; what virt-manager's graphs and Cockpit poll): QEMU's own
 * counters over QMP (query-blockstats, query-block, query-cpus-fast, query-balloon) and the
 * kernel's per-thread CPU times. Read-only: nothing here changes the guest.
 */
import { readFileSync } from 'node:fs';
import type { DiskDef } from '../domain/domain-def.js';
import type { DomainInfo, Hypervisor } from '../lifecycle/hypervisor.js';
import { diskNodeName } from '../qemu/argv.js';
import { RemoteError, VirErr, VirFrom } from './errors.js';

export interface BlockStats {
  readonly name: string;
  readonly path: string | undefined;
  readonly rdReqs: bigint;
  readonly rdBytes: bigint;
  readonly rdTimes: bigint;
  readonly wrReqs: bigint;
  readonly wrBytes: bigint;
  readonly wrTimes: bigint;
  readonly flReqs: bigint;
  readonly flTimes: bigint;
  readonly errs: bigint;
  readonly capacity: bigint;
  readonly allocation: bigint;
}

export interface VcpuStats {
  readonly number: number;
  readonly timeNs: bigint;
  readonly hostCpu: number;
}

export interface GuestStats {
  readonly blocks: readonly BlockStats[];
  readonly vcpus: readonly VcpuStats[];
  /** Balloon size (what the guest may use) and QEMU's resident size, KiB. */
  readonly balloonKiB: bigint;
  readonly rssKiB: bigint;
}

interface QmpStatsEntry {
  readonly 'node-name'?: string;
  readonly qdev?: string;
  readonly stats?: Record<string, number | boolean>;
}

interface QmpBlockEntry {
  readonly qdev?: string;
  readonly inserted?: { readonly 'node-name'?: string; readonly image?: { 'virtual-size'?: number; 'actual-size'?: number } };
}

const big = (v: unknown): bigint => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? BigInt(Math.trunc(v)) : 0n);

/** Which QMP entry is this disk's: its top format node, or its device (`disk-vda`). */
function mine(d: DiskDef, e: { 'node-name'?: string; qdev?: string; inserted?: { 'node-name'?: string } }): boolean {
  const node = diskNodeName(d);
  const dev = `disk-${d.target.dev}`;
  return e['node-name'] === node || e.inserted?.['node-name'] === node || e.qdev === dev || (e.qdev ?? '').includes(`/${dev}/`);
}

/** The thread's utime + stime (ns) and the host CPU it last ran on, from /proc. */
function threadStat(pid: number, tid: number): { timeNs: bigint; cpu: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { timeNs: (BigInt(f[11] ?? 0) + BigInt(f[12] ?? 0)) * 10_000_000n, cpu: Number(f[36] ?? -1) };
  } catch {
    return { timeNs: 0n, cpu: -1 }; // the thread ended between the query and this read
  }
}

function rssKiB(pid: number): bigint {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] ? BigInt(m[1]) : 0n;
  } catch {
    return 0n;
  }
}

export function requireActive(info: DomainInfo): NonNullable<DomainInfo['record']> & { pid: number } {
  const rec = info.record;
  if (!rec?.pid) throw new RemoteError(VirErr.OPERATION_INVALID, VirFrom.QEMU, 'domain is not running');
  return rec as NonNullable<DomainInfo['record']> & { pid: number };
}

export async function guestStats(hv: Hypervisor, info: DomainInfo): Promise<GuestStats> {
  const rec = requireActive(info);
  const disks = info.def.disks.filter((d) => d.path !== undefined || d.device !== 'cdrom');
  return hv.env.withQmp(rec, async (q) => {
    const stats = (await q.execute('query-blockstats')) as QmpStatsEntry[];
    const block = (await q.execute('query-block')) as QmpBlockEntry[];
    const cpus = (await q.execute('query-cpus-fast')) as { 'cpu-index': number; 'thread-id': number }[];
    let balloon = BigInt(info.def.currentMemoryKiB);
    try {
      balloon = big(((await q.execute('query-balloon')) as { actual?: number }).actual) / 1024n;
    } catch {
      // no balloon device: the guest has all of its current memory
    }
    return {
      blocks: disks.map((d) => {
        const s = stats.find((e) => mine(d, e))?.stats ?? {};
        const img = block.find((e) => mine(d, e))?.inserted?.image ?? {};
        return {
          name: d.target.dev,
          path: d.path,
          rdReqs: big(s['rd_operations']),
          rdBytes: big(s['rd_bytes']),
          rdTimes: big(s['rd_total_time_ns']),
          wrReqs: big(s['wr_operations']),
          wrBytes: big(s['wr_bytes']),
          wrTimes: big(s['wr_total_time_ns']),
          flReqs: big(s['flush_operations']),
          flTimes: big(s['flush_total_time_ns']),
          errs: big(s['failed_rd_operations']) + big(s['failed_wr_operations']),
          capacity: big(img['virtual-size']),
          allocation: big(img['actual-size']),
        };
      }),
      vcpus: cpus.map((c) => ({ number: c['cpu-index'], ...statOf(rec.pid, c['thread-id']) })),
      balloonKiB: balloon,
      rssKiB: rssKiB(rec.pid),
    };
  });
}

function statOf(pid: number, tid: number): { timeNs: bigint; hostCpu: number } {
  const s = threadStat(pid, tid);
  return { timeNs: s.timeNs, hostCpu: s.cpu };
}

/** The disk a call names: its target (`vda`) or its source path, as libvirt accepts either. */
export function findBlock(stats: GuestStats, name: string, domain: string): BlockStats {
  const b = stats.blocks.find((x) => x.name === name || x.path === name);
  if (!b) throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, `invalid path: ${name} is not a disk of domain '${domain}'`);
  return b;
}
