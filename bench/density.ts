import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive, type ProcessIdentity } from '../src/host/proc.js';
import type { RunningRecord } from '../src/store/store.js';
import { guestSpec, guestXml, makeImage } from './guest.js';
import { identity, pssKb, statusKb, waitUntil } from './proc.js';
import { round, series, type Series } from './stats.js';
import { closeLater, type RunContext } from './svirt-runs.js';
import { openHypervisor } from './svirt-setup.js';

export interface DensityResult {
  readonly guests: number;
  readonly stack: string;
  readonly started: number;
  readonly failures: string[];
  /** From the first start call until every start resolved, ms. */
  readonly startAllMs: number;
  /** Each guest's own start latency within the burst. */
  readonly perGuestStart: Series;
  readonly destroyAllMs: number;
  /** From the destroys returning until every monitor's reconcile hook has exited. */
  readonly hooksQuietMs: number;
  /** kB per running guest: what svirt keeps (the monitor) and QEMU itself. */
  readonly monitorRssKb: Series;
  readonly monitorPssKb: Series;
  readonly qemuRssKb: Series;
  readonly qemuPssKb: Series;
  /** Resident memory of the svirt processes that stay per guest, all guests together (MiB). */
  readonly svirtTotalRssMiB: number;
  readonly qemuTotalRssMiB: number;
}

/** N paused guests started concurrently through one Hypervisor (library calls), then destroyed. */
export async function density(ctx: RunContext, guests: number, stack: string): Promise<DensityResult> {
  const dir = join(ctx.work, 'density');
  const images = join(ctx.work, 'images', 'density');
  mkdirSync(images, { recursive: true, mode: 0o711 });
  const hv = await openHypervisor(dir, stack);
  closeLater(hv, ctx.janitor);
  const specs = Array.from({ length: guests }, (_, i) => guestSpec(`dense-${i}`, makeImage(join(images, `dense-${i}.img`))));
  for (const g of specs) hv.define(guestXml(g));
  const t0 = performance.now();
  const settled = await Promise.allSettled(
    specs.map(async (g) => {
      const rec = await hv.start(g.name, { paused: true });
      return { rec, ms: performance.now() - t0 };
    }),
  );
  const startAllMs = performance.now() - t0;
  const running: RunningRecord[] = [];
  const perGuest: number[] = [];
  const failures: string[] = [];
  const monitors: ProcessIdentity[] = [];
  for (const s of settled) {
    if (s.status === 'rejected') {
      failures.push(s.reason instanceof Error ? s.reason.message : String(s.reason));
      continue;
    }
    running.push(s.value.rec);
    perGuest.push(s.value.ms);
    if (s.value.rec.pid !== null && s.value.rec.pidStart !== null)
      ctx.janitor.track({ pid: s.value.rec.pid, startTime: s.value.rec.pidStart });
    const m = s.value.rec.monitorPid !== null ? identity(s.value.rec.monitorPid) : undefined;
    if (m) {
      monitors.push(m);
      ctx.janitor.track(m);
    }
  }
  const mRss: number[] = [];
  const mPss: number[] = [];
  const qRss: number[] = [];
  const qPss: number[] = [];
  for (const rec of running) {
    if (rec.monitorPid !== null) {
      mRss.push(statusKb(rec.monitorPid, 'VmRSS') ?? NaN);
      mPss.push(pssKb(rec.monitorPid) ?? NaN);
    }
    if (rec.pid !== null) {
      qRss.push(statusKb(rec.pid, 'VmRSS') ?? NaN);
      qPss.push(pssKb(rec.pid) ?? NaN);
    }
  }
  ctx.log(`  density: ${running.length}/${guests} started in ${startAllMs.toFixed(0)} ms; destroying`);
  const t1 = performance.now();
  await Promise.allSettled(running.map((r) => hv.destroy(r.name)));
  const destroyAllMs = performance.now() - t1;
  for (const r of running) if (r.pid !== null) ctx.janitor.untrack(r.pid);
  const hooksQuietMs = await waitUntil(() => monitors.every((m) => !isAlive(m)), 120_000, 'every monitor to exit', 5);
  for (const m of monitors) ctx.janitor.untrack(m.pid);
  for (const g of specs) hv.undefine(g.name);
  const sum = (xs: number[]): number => xs.filter(Number.isFinite).reduce((a, b) => a + b, 0);
  return {
    guests,
    stack,
    started: running.length,
    failures,
    startAllMs: round(startAllMs, 1),
    perGuestStart: series(perGuest),
    destroyAllMs: round(destroyAllMs, 1),
    hooksQuietMs: round(hooksQuietMs, 1),
    monitorRssKb: series(mRss),
    monitorPssKb: series(mPss),
    qemuRssKb: series(qRss),
    qemuPssKb: series(qPss),
    svirtTotalRssMiB: round(sum(mRss) / 1024, 1),
    qemuTotalRssMiB: round(sum(qRss) / 1024, 1),
  };
}
