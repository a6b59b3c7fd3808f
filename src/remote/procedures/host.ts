/**
 * What a client asks of the host (issue 14): free memory (never a silent 0), cells, memory and
 * CPU statistics, sysinfo, the vCPU limit, and the domain capabilities virt-manager and
 * virt-install read to decide what a new guest may use. Everything comes from the kernel's own
 * files (/proc, /sys) or from what svirt's parser accepts; nothing is a fixed answer.
 */
import { cpus } from 'node:os';
import { RemoteError, VirErr, VirFrom } from '../errors.js';
import { STRING_MAX, readOptString } from '../protocol.js';
import { cpuTimes, domainCapabilitiesXml, MAX_VCPUS, meminfo, sysinfoXml } from '../host-facts.js';
import { checkFlags } from './util.js';
import { procedure, type Procedure } from './types.js';

/** remote_node_get_*_stats: nparams 0 asks for the count; cell/cpu -1 means all. */
function stats(
  w: { string(s: string, max: number): unknown; uhyper(v: bigint): unknown; int(v: number): unknown },
  all: [string, bigint][],
  nparams: number,
): void {
  const out = nparams === 0 ? [] : all.slice(0, nparams);
  w.int(out.length);
  for (const [field, value] of out) {
    w.string(field, 80);
    w.uhyper(value);
  }
  w.int(all.length);
}

export const hostProcedures: readonly Procedure[] = [
  procedure('NodeGetFreeMemory', {
    api: 'virNodeGetFreeMemory',
    run: (_c, _a, w) => void w.uhyper(meminfo().free * 1024n),
  }),
  procedure('NodeGetCellsFreeMemory', {
    api: 'virNodeGetCellsFreeMemory',
    decode: (r) => ({ start: r.int(), max: r.int() }),
    run: (_c, a, w) => {
      // One NUMA cell is all svirt reports (it places no guest by node).
      if (a.start !== 0 || a.max < 1 || a.max > 1024) {
        throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, `start cell ${a.start} out of range (0-0)`);
      }
      w.uint(1).uhyper(meminfo().free * 1024n);
    },
  }),
  procedure('NodeGetMemoryStats', {
    api: 'virNodeGetMemoryStats',
    decode: (r) => ({ nparams: r.int(), cell: r.int(), flags: r.uint() }),
    run: (_c, a, w) => {
      checkFlags(a.flags, 0, 'virNodeGetMemoryStats');
      if (a.cell !== -1 && a.cell !== 0) throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, `invalid cell number ${a.cell}`);
      if (a.nparams < 0 || a.nparams > 16) throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, 'nparams too large');
      const m = meminfo();
      stats(
        w,
        [
          ['total', m.total],
          ['free', m.free],
          ['buffers', m.buffers],
          ['cached', m.cached],
        ],
        a.nparams,
      );
    },
  }),
  procedure('NodeGetCPUStats', {
    api: 'virNodeGetCPUStats',
    decode: (r) => ({ cpu: r.int(), nparams: r.int(), flags: r.uint() }),
    run: (_c, a, w) => {
      checkFlags(a.flags, 0, 'virNodeGetCPUStats');
      if (a.nparams < 0 || a.nparams > 16) throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, 'nparams too large');
      const t = cpuTimes(a.cpu);
      if (!t) throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, `Invalid cpuNum in virHostCPUGetStats: ${a.cpu}`);
      stats(
        w,
        [
          ['kernel', t.kernel],
          ['user', t.user],
          ['idle', t.idle],
          ['iowait', t.iowait],
        ],
        a.nparams,
      );
    },
  }),
  procedure('NodeGetCPUMap', {
    api: 'virNodeGetCPUMap',
    decode: (r) => ({ needMap: r.int(), needOnline: r.int(), flags: r.uint() }),
    run: (_c, a, w) => {
      checkFlags(a.flags, 0, 'virNodeGetCPUMap');
      const n = cpus().length;
      const map = Buffer.alloc(a.needMap ? Math.ceil(n / 8) : 0);
      for (let i = 0; i < n && a.needMap; i++) map[i >> 3] = (map[i >> 3] ?? 0) | (1 << (i & 7));
      w.opaqueVar(map, 2048)
        .uint(a.needOnline ? n : 0)
        .int(n);
    },
  }),
  procedure('ConnectGetMaxVcpus', {
    api: 'virConnectGetMaxVcpus',
    decode: (r) => readOptString(r),
    run: (_c, type, w) => {
      if (type !== undefined && !['qemu', 'kvm'].includes(type.toLowerCase())) {
        throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, `unknown type '${type}'`);
      }
      w.int(MAX_VCPUS);
    },
  }),
  procedure('ConnectGetSysinfo', {
    api: 'virConnectGetSysinfo',
    decode: (r) => r.uint(),
    run: (_c, flags, w) => {
      checkFlags(flags, 0, 'virConnectGetSysinfo');
      w.string(sysinfoXml(), STRING_MAX);
    },
  }),
  procedure('ConnectGetDomainCapabilities', {
    api: 'virConnectGetDomainCapabilities',
    decode: (r) => ({
      emulator: readOptString(r),
      arch: readOptString(r),
      machine: readOptString(r),
      virttype: readOptString(r),
      flags: r.uint(),
    }),
    run: (ctx, a, w) => {
      checkFlags(a.flags, 0, 'virConnectGetDomainCapabilities');
      w.string(domainCapabilitiesXml(ctx.server.hv, a), STRING_MAX);
    },
  }),
];
