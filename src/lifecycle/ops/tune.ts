/**
 * setmem, setmaxmem and setvcpus, live (the running QEMU) and config (the stored
 * definition), with libvirt's flags: neither means the guest's current state (live while it
 * runs, config otherwise). Live memory goes through the balloon; the maximum memory and the
 * maximum vCPU count are fixed for a running QEMU and change in the definition only; the
 * current vCPU count is hot-plugged (vcpu-hotplug.ts, loaded only for it).
 */
import type { DomainDef } from '../../domain/domain-def.js';
import { formatDomainXml, parseDomainXml } from '../../domain/index.js';
import { SvirtError } from '../../errors.js';
import type { LifecycleEnv } from '../env.js';
import { requireRunning, type Guest } from '../guest.js';

export interface Impact {
  readonly live?: boolean;
  readonly config?: boolean;
}

/** libvirt's AFFECT_CURRENT: the running guest when it runs, else its definition. */
export function resolveImpact(guest: Guest, i: Impact): { live: boolean; config: boolean } {
  const running = guest.record !== undefined;
  if (!i.live && !i.config) return { live: running, config: !running };
  if (i.live && !running) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${guest.name}' is not running`);
  if (i.config && !guest.persistent) {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `cannot change the persistent configuration of a transient domain '${guest.name}'`,
    );
  }
  return { live: i.live === true, config: i.config === true };
}

/** Writes a changed stored definition (validated by formatting it). */
export function putConfig(env: LifecycleEnv, guest: Guest, change: (d: DomainDef) => DomainDef): void {
  const stored = guest.stored;
  if (!stored)
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${guest.name}' is transient: it has no inactive definition`);
  const def = change(parseDomainXml(stored.xml));
  env.store.putDefinition({ uuid: def.uuid, name: def.name, xml: formatDomainXml(def) });
}

/** Writes a changed live definition of a running guest. */
export function putLive(env: LifecycleEnv, guest: Guest, change: (d: DomainDef) => DomainDef): void {
  const rec = requireRunning(guest);
  env.store.updateRunning(rec.uuid, { liveXml: formatDomainXml(change(parseDomainXml(rec.liveXml))) });
}

/** `setmem NAME SIZE`: the balloon's target (live), `<currentMemory>` (config). */
export async function setMemory(env: LifecycleEnv, guest: Guest, kib: number, impact: Impact): Promise<void> {
  const { live, config } = resolveImpact(guest, impact);
  if (!Number.isSafeInteger(kib) || kib <= 0) throw new SvirtError('SVIRT_ERR_USAGE', `setmem: ${kib} KiB is not a memory size`);
  if (live) {
    const rec = requireRunning(guest);
    if (kib > guest.def.memoryKiB) {
      throw new SvirtError('SVIRT_ERR_USAGE', `cannot set memory higher than max memory (${kib} > ${guest.def.memoryKiB} KiB)`);
    }
    if (guest.def.memballoon?.model === 'none') {
      throw new SvirtError(
        'SVIRT_ERR_OPERATION_INVALID',
        `domain '${guest.name}' has no balloon device: its memory cannot change while it runs`,
      );
    }
    // The live XML keeps its <currentMemory>: svirt sizes QEMU's RAM from it (-m), and a save
    // of this run must restore into the same RAM size; the balloon's size is dommemstat's `actual`.
    await env.withQmp(rec, (q) => q.execute('balloon', { value: kib * 1024 }));
  }
  if (config) {
    putConfig(env, guest, (d) => {
      if (kib > d.memoryKiB)
        throw new SvirtError('SVIRT_ERR_USAGE', `cannot set memory higher than max memory (${kib} > ${d.memoryKiB} KiB)`);
      return { ...d, currentMemoryKiB: kib };
    });
  }
}

/** `setmaxmem NAME SIZE`: `<memory>` of the definition; a running QEMU's is fixed. */
export function setMaxMemory(env: LifecycleEnv, guest: Guest, kib: number, impact: Impact): void {
  const { live, config } = resolveImpact(guest, impact);
  if (!Number.isSafeInteger(kib) || kib <= 0)
    throw new SvirtError('SVIRT_ERR_USAGE', `setmaxmem: ${kib} KiB is not a memory size`);
  if (live) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', 'cannot resize the maximum memory on an active domain');
  if (config) putConfig(env, guest, (d) => ({ ...d, memoryKiB: kib, currentMemoryKiB: Math.min(d.currentMemoryKiB, kib) }));
}

/** The vCPUs a definition starts with (`<vcpu current>`, else all of them). */
export function currentVcpus(d: DomainDef): number {
  return d.vcpusCurrent ?? d.vcpus;
}

/** A definition with `n` current vCPUs of its maximum (`current` left out when they are all). */
function withCurrent(d: DomainDef, n: number): DomainDef {
  const { vcpusCurrent: _, ...rest } = d;
  return n === d.vcpus ? rest : { ...rest, vcpusCurrent: n };
}

/**
 * `setvcpus NAME N`: libvirt's meaning. Without `--maximum`, the current count: hot-plugged or
 * unplugged live, `<vcpu current>` in the definition, never above the maximum. With
 * `--maximum` (config only), `<vcpu>` itself; the current count stays, at most the new maximum.
 */
export async function setVcpus(
  env: LifecycleEnv,
  guest: Guest,
  n: number,
  impact: Impact & { maximum?: boolean },
): Promise<void> {
  const { live, config } = resolveImpact(guest, impact);
  if (!Number.isSafeInteger(n) || n < 1 || n > 255)
    throw new SvirtError('SVIRT_ERR_USAGE', `setvcpus: ${n} is not a vCPU count (1-255)`);
  if (impact.maximum === true) {
    if (live) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', 'cannot change the maximum vCPU count of a running domain');
    putConfig(env, guest, (d) => withCurrent({ ...d, vcpus: n }, Math.min(currentVcpus(d), n)));
    return;
  }
  if (config) {
    const stored = guest.stored ? parseDomainXml(guest.stored.xml) : undefined;
    if (stored && n > stored.vcpus) {
      throw new SvirtError(
        'SVIRT_ERR_USAGE',
        `requested vcpus is greater than max allowable vcpus for the persistent domain: ${n} > ${stored.vcpus} (use --maximum)`,
      );
    }
  }
  if (live) {
    const { setLiveVcpus } = await import('./vcpu-hotplug.js');
    await setLiveVcpus(env, guest, n, (count) => putLive(env, guest, (d) => withCurrent(d, count)));
  }
  if (config) putConfig(env, guest, (d) => withCurrent(d, n));
}

/** DomainGetVcpusFlags: the live or configured count, current or (`maximum`) the most it may have. */
export function vcpuCount(guest: Guest, impact: Impact & { maximum?: boolean }): number {
  const { config } = resolveImpact(guest, impact);
  const d = config && guest.stored ? parseDomainXml(guest.stored.xml) : guest.def;
  return impact.maximum === true ? d.vcpus : currentVcpus(d);
}
