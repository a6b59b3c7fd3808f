/**
 * Live vCPU hot-plug and unplug (`setvcpus --live`), as libvirt does it for QEMU: a guest
 * started with `<vcpu current='N'>M</vcpu>` runs `-smp N,maxcpus=M`, and the free slots of
 * `query-hotpluggable-cpus` take a CPU device (`device_add` of the slot's type with its
 * socket/core/thread ids). Only CPUs plugged this way can be unplugged again (`device_del`,
 * which the guest must acknowledge through ACPI; svirt waits until the slot is free); the ones the guest booted with are QEMU's own.
 * A vCPU is a thread of the guest's own QEMU: no file, no label, no cgroup change is involved.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SvirtError } from '../../errors.js';
import type { QmpClient } from '../../qemu/qmp-client.js';
import type { LifecycleEnv } from '../env.js';
import { requireRunning, type Guest } from '../guest.js';

/** How long the guest has to release a vCPU after device_del. */
const UNPLUG_TIMEOUT_MS = 20_000;
/** How often the slots are asked again while the guest ejects a vCPU. */
const POLL_MS = 200;
/** Ids of the CPU devices svirt plugs: `vcpuN`, N the slot's index. */
const ID_PREFIX = 'vcpu';

interface CpuSlot {
  readonly type: string;
  readonly props: Readonly<Record<string, number>>;
  readonly qomPath?: string;
}

function order(a: CpuSlot, b: CpuSlot): number {
  for (const k of ['node-id', 'socket-id', 'die-id', 'cluster-id', 'core-id', 'thread-id']) {
    const d = (a.props[k] ?? 0) - (b.props[k] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The guest's CPU slots in index order (QEMU lists them highest first). */
async function slots(q: QmpClient): Promise<CpuSlot[]> {
  const raw = (await q.execute('query-hotpluggable-cpus')) as {
    type: string;
    props: Record<string, number>;
    'qom-path'?: string;
  }[];
  return raw
    .map((s) => ({ type: s.type, props: s.props, ...(s['qom-path'] === undefined ? {} : { qomPath: s['qom-path'] }) }))
    .sort(order);
}

/**
 * Plugs or unplugs vCPUs until the running guest has `n`; `record` writes the count QEMU
 * ends with into the live XML, also when a step fails midway.
 */
export async function setLiveVcpus(env: LifecycleEnv, guest: Guest, n: number, record: (count: number) => void): Promise<void> {
  const rec = requireRunning(guest);
  const max = guest.def.vcpus;
  if (n > max) {
    throw new SvirtError(
      'SVIRT_ERR_USAGE',
      `requested vcpus is greater than max allowable vcpus for the live domain: ${n} > ${max} (raise <vcpu> with --config --maximum and restart)`,
    );
  }
  const count = await env.withQmp(rec, async (q) => {
    const all = await slots(q);
    const used = all.filter((s) => s.qomPath !== undefined).length;
    const ours = [...all.entries()].filter(([i, s]) => s.qomPath === `/machine/peripheral/${ID_PREFIX}${i}`);
    if (used - n > ours.length) {
      throw new SvirtError(
        'SVIRT_ERR_OPERATION_INVALID',
        `domain '${guest.name}' has ${used} vCPUs, ${used - ours.length} of them started with it, which cannot be unplugged (only hot-plugged vCPUs can)`,
      );
    }
    const tcg = await tcgThreads(q, rec.runtimeDir, used);
    try {
      for (const [i, s] of all.entries()) {
        if (s.qomPath !== undefined) continue;
        if ((await occupied(q)) >= n) break;
        tcg?.take(max, guest.name);
        await q.execute('device_add', { driver: s.type, id: `${ID_PREFIX}${i}`, ...s.props });
      }
      for (const [i] of ours.reverse()) {
        if ((await occupied(q)) <= n) break;
        await unplug(q, `${ID_PREFIX}${i}`);
      }
    } finally {
      // Whatever happened, the live XML says what QEMU has (an error midway keeps what was done).
      record(await occupied(q));
    }
    return occupied(q);
  });
  if (count !== n) throw new SvirtError('SVIRT_ERR_INTERNAL', `domain '${guest.name}' has ${count} vCPUs, not ${n}`);
}

async function occupied(q: QmpClient): Promise<number> {
  return (await slots(q)).filter((s) => s.qomPath !== undefined).length;
}

/**
 * QEMU 7.2's TCG gives each vCPU thread a translation context for the whole run and never
 * frees it: a vCPU plugged after an unplug past `maxcpus` threads aborts QEMU
 * (`tcg_register_thread: assertion failed: (n < tcg_max_ctxs)`). Under TCG svirt counts the
 * threads of this run in the runtime dir and refuses the plug that would kill the guest.
 */
async function tcgThreads(
  q: QmpClient,
  runtimeDir: string,
  booted: number,
): Promise<{ take(max: number, name: string): void } | undefined> {
  const kvm = (await q.execute('query-kvm')) as { enabled?: boolean };
  if (kvm.enabled === true) return undefined;
  const file = join(runtimeDir, 'tcg-vcpu-threads');
  let made: number;
  try {
    made = Number.parseInt(readFileSync(file, 'utf8'), 10);
  } catch {
    made = booted; // no plug yet in this run
  }
  return {
    take(max: number, name: string): void {
      if (made >= max) {
        throw new SvirtError(
          'SVIRT_ERR_OPERATION_INVALID',
          `domain '${name}' runs under TCG, where QEMU cannot start more than ${max} vCPU threads in one run (an unplugged vCPU keeps its TCG context); restart it to plug more`,
        );
      }
      made++;
      writeFileSync(file, `${made}\n`, { mode: 0o600 });
    },
  };
}

/** device_del, then waits until the guest has ejected it (its slot is free again). */
async function unplug(q: QmpClient, id: string): Promise<void> {
  await q.execute('device_del', { id });
  const deadline = Date.now() + UNPLUG_TIMEOUT_MS;
  while ((await slots(q)).some((s) => s.qomPath === `/machine/peripheral/${id}`)) {
    if (Date.now() > deadline) {
      throw new SvirtError(
        'SVIRT_ERR_TIMEOUT',
        `the guest did not release vCPU ${id} within ${UNPLUG_TIMEOUT_MS / 1000} s (its ACPI must eject it); it may still do so`,
      );
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
