import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive, type ProcessIdentity } from '../src/host/proc.js';
import type { RunningRecord } from '../src/store/store.js';
import { guestSpec, guestXml, makeImage } from './guest.js';
import { childrenByParent, identity, pssKb, runTimed, statusKb, waitUntil } from './proc.js';
import { round, series, type Series } from './stats.js';
import { closeLater, type RunContext } from './svirt-runs.js';
import { cliArgv, envWithoutExtraCerts, openHypervisor } from './svirt-setup.js';

/** Guests started at once (a burst); the next burst starts when this one has. */
export const START_BATCH = 50;
/**
 * Guests destroyed at once. Each QEMU exit runs its monitor's hook (a Node process while
 * there is no lean cleanup path): 20 at a time keeps that to ~1 GiB and the 2 CPUs usable.
 */
export const DESTROY_BATCH = 20;

/** `svirt list` with every guest running, alternating with `node -e ''` in the same environment. */
export interface ListWithGuests {
  readonly env: string;
  readonly list: Series;
  readonly pairedNode: Series;
  /** Guests the last `svirt list` showed running. */
  readonly shown: number;
}

export interface DensityResult {
  readonly guests: number;
  readonly stack: string;
  readonly started: number;
  readonly failures: string[];
  readonly startBatch: number;
  /** From the first start call until every start resolved (bursts of startBatch), ms. */
  readonly startAllMs: number;
  /** Each guest's own start latency within its burst. */
  readonly perGuestStart: Series;
  /**
   * kB per running guest that svirt keeps: the monitor, its backup (a fork of it) and any
   * helper process recorded for the guest (none for this guest): Pss (shared pages divided
   * among their users), from /proc/PID/smaps_rollup.
   */
  readonly svirtPssKb: Series;
  readonly monitorPssKb: Series;
  readonly backupPssKb: Series;
  readonly monitorRssKb: Series;
  /** svirt processes per guest (monitor + backups + helpers), median. */
  readonly svirtProcsPerGuest: number;
  readonly helpersPerGuest: number;
  readonly qemuRssKb: Series;
  readonly qemuPssKb: Series;
  readonly svirtTotalPssMiB: number;
  readonly qemuTotalRssMiB: number;
  readonly qemuTotalPssMiB: number;
  readonly lists: ListWithGuests[];
  /** Destroy calls, DESTROY_BATCH at a time, summed. */
  readonly destroyAllMs: number;
  /** After each batch's destroys, until its monitors (and their hooks) exited, summed. */
  readonly hooksQuietMs: number;
}

/** What one running guest is allowed to need here (QEMU's ~37 MiB resident, its hook at exit, margin). */
const MIB_PER_GUEST = 64;
/** Left free for the rest of the machine (it is shared). */
const MIB_SPARE = 2048;

/** Why N guests do not fit in this machine's available memory, or undefined when they do. */
export function densityMemoryShort(guests: number): string | undefined {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  if (!m) return undefined; // no MemAvailable (old kernel): let the starts find out
  const availMiB = Math.floor(Number(m[1]) / 1024);
  const needMiB = guests * MIB_PER_GUEST + MIB_SPARE;
  return availMiB >= needMiB
    ? undefined
    : `${guests} guests need ~${needMiB} MiB (${MIB_PER_GUEST} per guest + ${MIB_SPARE} spare), MemAvailable is ${availMiB} MiB`;
}

interface GuestMemory {
  monitorPss: number;
  backupPss: number;
  helperPss: number;
  procs: number;
  helpers: number;
  monitorRss: number;
  qemuRss: number;
  qemuPss: number;
}

/** What one running guest costs in memory: svirt's processes and QEMU, from /proc. */
function guestMemory(rec: RunningRecord, children: Map<number, number[]>): GuestMemory {
  const m = rec.monitorPid;
  // The monitor's children: QEMU (through svirt-exec, same pid) and the backup monitor.
  const backups = m === null ? [] : (children.get(m) ?? []).filter((p) => p !== rec.pid);
  const helpers = rec.helpers.flatMap((h) => (h.pid !== null ? [h.pid] : []));
  const pss = (pids: number[]): number => pids.reduce((a, p) => a + (pssKb(p) ?? NaN), 0);
  return {
    monitorPss: m === null ? NaN : (pssKb(m) ?? NaN),
    backupPss: pss(backups),
    helperPss: pss(helpers),
    procs: (m === null ? 0 : 1) + backups.length + helpers.length,
    helpers: helpers.length,
    monitorRss: m === null ? NaN : (statusKb(m, 'VmRSS') ?? NaN),
    qemuRss: rec.pid === null ? NaN : (statusKb(rec.pid, 'VmRSS') ?? NaN),
    qemuPss: rec.pid === null ? NaN : (pssKb(rec.pid) ?? NaN),
  };
}

/**
 * N paused guests started through one Hypervisor (library calls, bursts of START_BATCH),
 * their memory read from /proc, `svirt list` (the CLI) timed with all of them running, then
 * all destroyed, DESTROY_BATCH at a time. Every QEMU and monitor is tracked by pid.
 */
export async function density(ctx: RunContext, guests: number, stack: string): Promise<DensityResult> {
  const dir = join(ctx.work, 'density');
  const images = join(ctx.work, 'images', 'density');
  mkdirSync(images, { recursive: true, mode: 0o711 });
  const hv = await openHypervisor(dir, stack);
  closeLater(hv, ctx.janitor);
  const specs = Array.from({ length: guests }, (_, i) => guestSpec(`dense-${i}`, makeImage(join(images, `dense-${i}.img`))));
  for (const g of specs) hv.define(guestXml(g));
  const running: RunningRecord[] = [];
  const perGuest: number[] = [];
  const failures: string[] = [];
  const monitors = new Map<string, ProcessIdentity>();
  const t0 = performance.now();
  for (let b = 0; b < specs.length; b += START_BATCH) {
    const settled = await Promise.allSettled(
      specs.slice(b, b + START_BATCH).map(async (g) => {
        const t = performance.now();
        const rec = await hv.start(g.name, { paused: true });
        return { rec, ms: performance.now() - t };
      }),
    );
    for (const s of settled) {
      if (s.status === 'rejected') {
        failures.push(s.reason instanceof Error ? s.reason.message : String(s.reason));
        continue;
      }
      const rec = s.value.rec;
      running.push(rec);
      perGuest.push(s.value.ms);
      if (rec.pid !== null && rec.pidStart !== null) ctx.janitor.track({ pid: rec.pid, startTime: rec.pidStart });
      const m = rec.monitorPid !== null ? identity(rec.monitorPid) : undefined;
      if (m) {
        monitors.set(rec.name, m);
        ctx.janitor.track(m);
      }
    }
  }
  const startAllMs = performance.now() - t0;
  ctx.log(`  density: ${running.length}/${guests} started in ${startAllMs.toFixed(0)} ms; reading /proc`);
  const children = childrenByParent();
  const mem = running.map((rec) => guestMemory(rec, children));

  ctx.log(`  density: svirt list with ${running.length} guests running, ${ctx.runs} runs`);
  const envs: [string, NodeJS.ProcessEnv][] = [['this machine', process.env]];
  if (process.env['NODE_EXTRA_CA_CERTS'] !== undefined) envs.push(['without NODE_EXTRA_CA_CERTS', envWithoutExtraCerts()]);
  const lists = await listRuns(ctx, dir, stack, envs, running.length);

  ctx.log(`  density: destroying, ${DESTROY_BATCH} at a time`);
  let destroyAllMs = 0;
  let hooksQuietMs = 0;
  for (let b = 0; b < running.length; b += DESTROY_BATCH) {
    const batch = running.slice(b, b + DESTROY_BATCH);
    const t1 = performance.now();
    await Promise.allSettled(batch.map((r) => hv.destroy(r.name)));
    destroyAllMs += performance.now() - t1;
    for (const r of batch) if (r.pid !== null) ctx.janitor.untrack(r.pid);
    const ms = batch.flatMap((r) => monitors.get(r.name) ?? []);
    hooksQuietMs += await waitUntil(() => ms.every((m) => !isAlive(m)), 120_000, 'monitors of the batch to exit', 5);
    for (const m of ms) ctx.janitor.untrack(m.pid);
  }
  for (const g of specs) hv.undefine(g.name);
  const pick = (f: (x: GuestMemory) => number): number[] => mem.map(f);
  const sum = (xs: number[]): number => xs.filter(Number.isFinite).reduce((a, b) => a + b, 0);
  const svirtPss = pick((x) => x.monitorPss + x.backupPss + x.helperPss);
  return {
    guests,
    stack,
    started: running.length,
    failures,
    startBatch: START_BATCH,
    startAllMs: round(startAllMs, 1),
    perGuestStart: series(perGuest),
    svirtPssKb: series(svirtPss),
    monitorPssKb: series(pick((x) => x.monitorPss)),
    backupPssKb: series(pick((x) => x.backupPss)),
    monitorRssKb: series(pick((x) => x.monitorRss)),
    svirtProcsPerGuest: series(pick((x) => x.procs)).summary.median,
    helpersPerGuest: series(pick((x) => x.helpers)).summary.median,
    qemuRssKb: series(pick((x) => x.qemuRss)),
    qemuPssKb: series(pick((x) => x.qemuPss)),
    svirtTotalPssMiB: round(sum(svirtPss) / 1024, 1),
    qemuTotalRssMiB: round(sum(pick((x) => x.qemuRss)) / 1024, 1),
    qemuTotalPssMiB: round(sum(pick((x) => x.qemuPss)) / 1024, 1),
    lists,
    destroyAllMs: round(destroyAllMs, 1),
    hooksQuietMs: round(hooksQuietMs, 1),
  };
}

/** `svirt list` (spawned) and `node -e ''` alternately, per environment, one warm-up first. */
async function listRuns(
  ctx: RunContext,
  dir: string,
  stack: string,
  envs: [string, NodeJS.ProcessEnv][],
  expected: number,
): Promise<ListWithGuests[]> {
  const samples = envs.map(() => ({ list: [] as number[], node: [] as number[], shown: 0 }));
  for (let i = 0; i <= ctx.runs; i++) {
    for (const [k, [, env]] of envs.entries()) {
      const s = samples[k] as (typeof samples)[number];
      const node = await runTimed([process.execPath, '-e', ''], { env, check: true });
      const list = await runTimed(cliArgv(dir, stack, ['list']), { env, check: true });
      s.shown = list.stdout.split('\n').filter((l) => /\bdense-\d+\b/.test(l)).length;
      if (s.shown !== expected) throw new Error(`svirt list showed ${s.shown} guests, ${expected} are running`);
      if (i === 0) continue;
      s.node.push(node.ms);
      s.list.push(list.ms);
    }
  }
  return envs.map(([name], k) => {
    const s = samples[k] as (typeof samples)[number];
    return { env: name, list: series(s.list), pairedNode: series(s.node), shown: s.shown };
  });
}
