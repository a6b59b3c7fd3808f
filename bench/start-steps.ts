import { join } from 'node:path';
import { isAlive } from '../src/host/proc.js';
import { guestXml } from './guest.js';
import { identity, waitUntil } from './proc.js';
import { series, type Series } from './stats.js';
import { closeLater, prepareGuest, slug, type RunContext } from './svirt-runs.js';
import { openHypervisor } from './svirt-setup.js';
import { instrumentStart, startSegments, type Mark } from './wrap.js';

/** One step of a start and how long it took (ms). */
export interface StepTimes {
  readonly contender: string;
  readonly stack?: string;
  readonly steps: { readonly step: string; readonly ms: Series }[];
}

/**
 * Where a library start spends its time: the public pieces Hypervisor.start calls (the
 * store, the security manager, QmpClient.connect) are wrapped with timestamps; the gaps
 * between them are the steps that are not wrapped (parsing, runtime dir, disk fds, spawn).
 */
export async function startSteps(ctx: RunContext, stack: string): Promise<StepTimes> {
  const tag = `steps-${slug(stack)}`;
  const hv = await openHypervisor(join(ctx.work, tag), stack);
  closeLater(hv, ctx.janitor);
  const g = prepareGuest(ctx, tag);
  hv.define(guestXml(g));
  const marks: Mark[] = [];
  const undo = instrumentStart(hv, marks);
  const steps: Record<string, number[]> = {};
  const add = (step: string, ms: number): void => {
    (steps[step] ??= []).push(ms);
  };
  try {
    for (let i = 0; i <= ctx.runs; i++) {
      marks.length = 0;
      const t0 = performance.now();
      const rec = await hv.start(g.name, { paused: true });
      const t1 = performance.now();
      const segments = startSegments(marks, t0, t1);
      const monitor = rec.monitorPid !== null ? identity(rec.monitorPid) : undefined;
      await hv.destroy(g.name);
      if (monitor) await waitUntil(() => !isAlive(monitor), 20_000, 'the monitor to exit');
      if (i === 0) continue;
      for (const [step, ms] of segments) add(step, ms);
      add('total', t1 - t0);
    }
  } finally {
    undo();
  }
  return {
    contender: 'svirt library',
    stack,
    steps: Object.entries(steps).map(([step, ms]) => ({ step, ms: series(ms) })),
  };
}
