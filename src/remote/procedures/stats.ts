/** Statistics of running guests (issue 14): dommemstat, domblkstat, domblkinfo, vcpuinfo and domstats. */
import { LIST, LIST_STATES, matchesListFilter, type ListFacts } from '../../lifecycle/list-filter.js';
import { RemoteError, VirErr, VirFrom } from '../errors.js';
import { findBlock, guestStats, requireActive, type GuestStats } from '../domain-stats.js';
import { DOMAIN_LIST_MAX, STRING_MAX, readDomain, writeDomain } from '../protocol.js';
import type { XdrWriter } from '../xdr.js';
import { procedure, type Procedure } from './types.js';
import { checkFlags, cpuTimeNs, readDomainArgs, resolve, stateCode, wireDomain } from './util.js';

/** virDomainMemoryStatTags svirt reports: the balloon's size and QEMU's resident set. */
const MEMSTAT_ACTUAL = 6;
const MEMSTAT_RSS = 7;
/** virDomainStatsTypes */
const STATS_STATE = 1;
const STATS_CPU = 2;
const STATS_BALLOON = 4;
const STATS_VCPU = 8;
const STATS_BLOCK = 32;
const STATS_SUPPORTED = STATS_STATE | STATS_CPU | STATS_BALLOON | STATS_VCPU | STATS_BLOCK;
/**
 * VIR_CONNECT_GET_ALL_DOMAINS_STATS_*: the list filters, which are ConnectListAllDomains' own
 * first eight flags (activity, persistence, state: list-filter.ts), then NOWAIT, BACKING,
 * ENFORCE_STATS.
 */
const F_LISTED = LIST.ACTIVE | LIST.INACTIVE | LIST.PERSISTENT | LIST.TRANSIENT | LIST_STATES;
const F_NOWAIT = 1 << 29;
const F_BACKING = 1 << 30;
const F_ENFORCE = 2 ** 31;

type Param = readonly [string, 'int' | 'uint' | 'ullong' | 'string', number | bigint | string];

function writeParams(w: XdrWriter, params: readonly Param[]): void {
  w.uint(params.length);
  for (const [field, type, v] of params) {
    w.string(field, 80);
    if (type === 'int') w.int(1).int(Number(v));
    else if (type === 'uint') w.int(2).uint(Number(v));
    else if (type === 'ullong') w.int(4).uhyper(BigInt(v));
    else w.int(7).string(String(v), STRING_MAX);
  }
}

function statsParams(groups: number, info: ReturnType<typeof resolve>, s: GuestStats | undefined): Param[] {
  const p: Param[] = [];
  const rec = info.record;
  if (groups & STATS_STATE) p.push(['state.state', 'int', stateCode(info.state)], ['state.reason', 'int', rec ? 1 : 0]);
  if (groups & STATS_CPU && rec?.pid) p.push(['cpu.time', 'ullong', cpuTimeNs(rec.pid)]);
  if (groups & STATS_BALLOON) {
    p.push(
      ['balloon.current', 'ullong', s?.balloonKiB ?? BigInt(info.def.currentMemoryKiB)],
      ['balloon.maximum', 'ullong', BigInt(info.def.memoryKiB)],
    );
    if (s) p.push(['balloon.rss', 'ullong', s.rssKiB]);
  }
  if (groups & STATS_VCPU) {
    p.push(
      ['vcpu.current', 'uint', s?.vcpus.length ?? info.def.vcpusCurrent ?? info.def.vcpus],
      ['vcpu.maximum', 'uint', info.def.vcpus],
    );
    for (const v of s?.vcpus ?? []) p.push([`vcpu.${v.number}.state`, 'int', 1], [`vcpu.${v.number}.time`, 'ullong', v.timeNs]);
  }
  if (groups & STATS_BLOCK && s) {
    p.push(['block.count', 'uint', s.blocks.length]);
    s.blocks.forEach((b, i) => {
      p.push([`block.${i}.name`, 'string', b.name]);
      if (b.path !== undefined) p.push([`block.${i}.path`, 'string', b.path]);
      for (const [k, v] of [
        ['rd.reqs', b.rdReqs],
        ['rd.bytes', b.rdBytes],
        ['rd.times', b.rdTimes],
        ['wr.reqs', b.wrReqs],
        ['wr.bytes', b.wrBytes],
        ['wr.times', b.wrTimes],
        ['fl.reqs', b.flReqs],
        ['fl.times', b.flTimes],
        ['allocation', b.allocation],
        ['capacity', b.capacity],
      ] as const) {
        p.push([`block.${i}.${k}`, 'ullong', v]);
      }
    });
  }
  return p;
}

/** GetAllDomainStats' filters ask only activity, persistence and state: no fact is ever read. */
const NO_FACTS: ListFacts = { managedSave: () => false, autostart: () => false, hasSnapshot: () => false };

export const statsProcedures: readonly Procedure[] = [
  procedure('DomainMemoryStats', {
    api: 'virDomainMemoryStats',
    reconcile: true,
    decode: (r) => ({ dom: readDomain(r), max: r.uint(), flags: r.uint() }),
    run: async (ctx, a, w) => {
      checkFlags(a.flags, 0, 'virDomainMemoryStats');
      if (a.max > 1024) throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, 'maxStats too large');
      const s = await guestStats(ctx.server.hv, resolve(ctx.server.hv, a.dom));
      const out: [number, bigint][] = [
        [MEMSTAT_ACTUAL, s.balloonKiB],
        [MEMSTAT_RSS, s.rssKiB],
      ];
      const n = out.slice(0, a.max);
      w.uint(n.length);
      for (const [tag, v] of n) w.int(tag).uhyper(v);
    },
  }),
  procedure('DomainBlockStats', {
    api: 'virDomainBlockStats',
    reconcile: true,
    decode: (r) => ({ dom: readDomain(r), path: r.string(STRING_MAX) }),
    run: async (ctx, a, w) => {
      const info = resolve(ctx.server.hv, a.dom);
      const b = findBlock(await guestStats(ctx.server.hv, info), a.path, info.name);
      w.hyper(b.rdReqs).hyper(b.rdBytes).hyper(b.wrReqs).hyper(b.wrBytes).hyper(b.errs);
    },
  }),
  procedure('DomainGetBlockInfo', {
    api: 'virDomainGetBlockInfo',
    reconcile: true,
    decode: (r) => ({ dom: readDomain(r), path: r.string(STRING_MAX), flags: r.uint() }),
    run: async (ctx, a, w) => {
      checkFlags(a.flags, 0, 'virDomainGetBlockInfo');
      const info = resolve(ctx.server.hv, a.dom);
      const b = findBlock(await guestStats(ctx.server.hv, info), a.path, info.name);
      w.uhyper(b.allocation).uhyper(b.capacity).uhyper(b.allocation); // physical: the file's own size on disk
    },
  }),
  procedure('DomainGetVcpus', {
    api: 'virDomainGetVcpus',
    reconcile: true,
    decode: (r) => ({ dom: readDomainArgs(r).dom, maxinfo: r.int(), maplen: r.int() }),
    run: async (ctx, a, w) => {
      if (a.maxinfo < 1 || a.maxinfo > 16384 || a.maplen < 0 || a.maplen > 2048) {
        throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, 'maxinfo or maplen out of range');
      }
      const info = resolve(ctx.server.hv, a.dom);
      requireActive(info);
      const vcpus = (await guestStats(ctx.server.hv, info)).vcpus.slice(0, a.maxinfo);
      w.uint(vcpus.length);
      for (const v of vcpus) w.uint(v.number).int(1).uhyper(v.timeNs).int(v.hostCpu);
      // Affinity: svirt pins nothing, so every vCPU may run on every host CPU.
      const map = Buffer.alloc(vcpus.length * a.maplen, 0xff);
      w.opaqueVar(map, 8388608);
    },
  }),
  procedure('ConnectGetAllDomainStats', {
    api: 'virConnectGetAllDomainStats',
    reconcile: true,
    decode: (r) => {
      const n = r.uint();
      if (n > DOMAIN_LIST_MAX) throw new RangeError(`at most ${DOMAIN_LIST_MAX} domains`);
      const doms = Array.from({ length: n }, () => readDomain(r));
      return { doms, stats: r.uint(), flags: r.uint() };
    },
    run: async (ctx, a, w) => {
      checkFlags(a.flags, F_LISTED | F_NOWAIT | F_BACKING | F_ENFORCE, 'virConnectGetAllDomainStats');
      const unknown = a.stats & ~STATS_SUPPORTED;
      if (unknown !== 0 && (a.flags & F_ENFORCE) !== 0) {
        throw new RemoteError(
          VirErr.NO_SUPPORT,
          VirFrom.QEMU,
          `Stats types bits 0x${unknown.toString(16)} are not supported by this daemon`,
        );
      }
      const groups = a.stats === 0 ? STATS_SUPPORTED : a.stats & STATS_SUPPORTED;
      const hv = ctx.server.hv;
      const infos =
        a.doms.length > 0
          ? a.doms.map((d) => resolve(hv, d)).filter((g) => ctx.client.canSee(g))
          : hv.list().filter((g) => matchesListFilter(g, a.flags & F_LISTED, NO_FACTS) && ctx.client.canSee(g));
      const records: { dom: ReturnType<typeof wireDomain>; params: Param[] }[] = [];
      for (const info of infos) {
        let s: GuestStats | undefined;
        if (info.record?.pid) {
          try {
            s = await guestStats(hv, info);
          } catch {
            s = undefined; // stopped meanwhile: its state is what is reported
          }
        }
        records.push({ dom: wireDomain(info), params: statsParams(groups, info, s) });
      }
      w.uint(records.length);
      for (const rec of records) {
        writeDomain(w, rec.dom);
        writeParams(w, rec.params);
      }
    },
  }),
];
