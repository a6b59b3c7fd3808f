import { readFileSync } from 'node:fs';
import { SvirtError } from '../../errors.js';
import type { GuestBrief } from '../../lifecycle/guest.js';
import type { DomainInfo, DomainState, Hypervisor } from '../../lifecycle/hypervisor.js';
import { RemoteError, VirErr, VirFrom } from '../errors.js';
import { readDomain, type WireDomain } from '../protocol.js';
import type { XdrReader } from '../xdr.js';

/** virDomainState */
export const VirDomainState = { NOSTATE: 0, RUNNING: 1, BLOCKED: 2, PAUSED: 3, SHUTDOWN: 4, SHUTOFF: 5, CRASHED: 6 } as const;

export function stateCode(s: DomainState): number {
  switch (s) {
    case 'running':
      return VirDomainState.RUNNING;
    case 'paused':
      return VirDomainState.PAUSED;
    case 'shut off':
      return VirDomainState.SHUTOFF;
  }
}

/** The wire identity of a guest: its row id while it runs, -1 when shut off (libvirt's convention). */
export function wireDomain(info: DomainInfo): WireDomain {
  return { name: info.name, uuid: info.uuid, id: info.record ? info.record.id : -1 };
}

/** wireDomain() of a guest read as a short row (Hypervisor.listBrief): the same three fields. */
export function wireBrief(b: GuestBrief): WireDomain {
  return { name: b.name, uuid: b.uuid, id: b.id ?? -1 };
}

/**
 * The guest a call names. libvirtd looks a remote_nonnull_domain up by its uuid (the name
 * may be stale after a rename); so does svirt, with libvirt's message when it is gone.
 */
export function resolve(hv: Hypervisor, d: WireDomain): DomainInfo {
  try {
    return hv.lookup(d.uuid);
  } catch (err) {
    if (err instanceof SvirtError && err.code === 'SVIRT_ERR_NO_DOMAIN') {
      throw new RemoteError(VirErr.NO_DOMAIN, VirFrom.QEMU, `no domain with matching uuid '${d.uuid}' (${d.name})`);
    }
    throw err;
  }
}

/** virCheckFlags: a flag this procedure does not know is refused, naming the API. */
export function checkFlags(flags: number, allowed: number, api: string): void {
  const unknown = (flags & ~allowed) >>> 0;
  if (unknown !== 0) {
    throw new RemoteError(VirErr.INVALID_ARG, VirFrom.QEMU, `unsupported flags (0x${unknown.toString(16)}) in function ${api}`);
  }
}

export function readDomainArgs(r: XdrReader): { dom: WireDomain } {
  return { dom: readDomain(r) };
}

export function readDomainFlagsArgs(r: XdrReader): { dom: WireDomain; flags: number } {
  return { dom: readDomain(r), flags: r.uint() };
}

/** utime + stime of a QEMU process in nanoseconds (virDomainInfo.cpuTime); 0 once it is gone. */
export function cpuTimeNs(pid: number | null | undefined): bigint {
  if (!pid) return 0n;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(rest[11]) + Number(rest[12]);
    return Number.isFinite(ticks) ? BigInt(ticks) * 10_000_000n : 0n;
  } catch {
    return 0n; // exited between the lookup and this read
  }
}
