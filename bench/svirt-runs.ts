import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Hypervisor } from '../src/lifecycle/hypervisor.js';
import { isAlive, type ProcessIdentity } from '../src/host/proc.js';
import type { RunningRecord } from '../src/store/store.js';
import { guestSpec, guestXml, makeImage, type GuestSpec } from './guest.js';
import { identity, waitUntil, type Janitor } from './proc.js';
import { series, type Series } from './stats.js';
import { rawPairer } from './raw-qemu.js';
import { openHypervisor, withHypervisor } from './svirt-setup.js';
import { now, type ProcWatcher } from './watch.js';

/** One contender's latencies (ms) for one stack. */
export interface LatencyRow {
  readonly contender: string;
  readonly stack: string;
  readonly start?: Series;
  readonly destroy?: Series;
  readonly define?: Series;
  /** `list` with an empty store (CLI, virsh: no guest defined there). */
  readonly listEmpty?: Series;
  /** `list` while the series' own guest runs. */
  readonly list?: Series;
  /** `dominfo NAME` of the running guest. */
  readonly dominfo?: Series;
  /** `save NAME FILE` of the running paused guest (QEMU gone, labels restored). */
  readonly save?: Series;
  /** `restore FILE --paused` of that file (the guest running again, paused). */
  readonly restore?: Series;
  /** destroy: from QEMU being gone (seen by /proc polling) to the destroy call/command returning. */
  readonly destroyAfterExit?: Series;
  /** QEMU killed outside svirt (crash, guest poweroff): from gone to its record gone (image owner back). */
  readonly exitToCleanedUp?: Series;
  /** From QEMU gone to the per-guest monitor's exit (its `svirt reconcile` hook done). */
  readonly monitorHook?: Series;
  /** Raw QEMU starts measured alternately with this row's starts (same time window). */
  readonly pairedRaw?: Series;
  /** The same raw QEMUs' destroys (SIGTERM until exit): QEMU's own share of a destroy. */
  readonly pairedRawDestroy?: Series;
  /** `node -e ''` (same environment) measured alternately with this row's CLI commands. */
  readonly pairedNode?: Series;
  readonly notes: string[];
}

export interface RunContext {
  readonly work: string;
  readonly runs: number;
  readonly janitor: Janitor;
  readonly watcher: ProcWatcher;
  readonly log: (line: string) => void;
}

export function slug(stack: string): string {
  return stack.replace(/,/g, '+');
}

export function qemuId(rec: RunningRecord): ProcessIdentity {
  if (rec.pid === null || rec.pidStart === null) throw new Error(`guest ${rec.name} has no recorded QEMU pid`);
  return { pid: rec.pid, startTime: rec.pidStart };
}

/** Tracks QEMU and the monitor of a started guest; returns the monitor's identity. */
export function track(rec: RunningRecord, janitor: Janitor): ProcessIdentity | undefined {
  janitor.track(qemuId(rec));
  const monitor = rec.monitorPid !== null ? identity(rec.monitorPid) : undefined;
  janitor.track(monitor);
  return monitor;
}

/**
 * Waits for the monitor to finish its `svirt reconcile` hook, so the next run does not
 * compete with it for the 2 CPUs; returns ms waited.
 */
export async function settle(monitor: ProcessIdentity | undefined, janitor: Janitor): Promise<number> {
  if (!monitor) return 0;
  const ms = await waitUntil(() => !isAlive(monitor), 20_000, `monitor ${monitor.pid} to exit`);
  janitor.untrack(monitor.pid);
  return ms;
}

/** A guest of its own (image + definition) for one series. */
export function prepareGuest(ctx: RunContext, tag: string): GuestSpec {
  const images = join(ctx.work, 'images');
  mkdirSync(images, { recursive: true, mode: 0o711 });
  return guestSpec(`bench-${tag}`, makeImage(join(images, `${tag}.img`)));
}

/** Destroys whatever still runs in a Hypervisor (cleanup after a failed run), then closes its store. */
export async function destroyLeftovers(hv: Hypervisor): Promise<void> {
  for (const rec of hv.store.listRunning()) {
    await hv.destroy(rec.name, { graceMs: 500 }).catch(() => undefined); // best effort; leftovers are killed by pid
  }
  hv.store.close();
}

/** destroyLeftovers when the run is cleaned up. */
export function closeLater(hv: Hypervisor, janitor: Janitor): void {
  janitor.onCleanup(() => destroyLeftovers(hv));
}

/**
 * The bench's own Hypervisor on a state dir, opened per use (withHypervisor) so that a timed
 * CLI command is alone on its store; whatever still runs there is destroyed at cleanup.
 */
export function hypervisorOnDemand(
  janitor: Janitor,
  dir: string,
  stack: string,
): <T>(fn: (hv: Hypervisor) => Promise<T> | T) => Promise<T> {
  janitor.onCleanup(async () => destroyLeftovers(await openHypervisor(dir, stack)));
  return (fn) => withHypervisor(dir, stack, fn);
}

/** One series, advanced one run at a time so that series can be interleaved (round-robin). */
export interface SeriesRunner {
  /** Run number i (0 is the untimed warm-up). */
  run(i: number): Promise<void>;
  finish(): LatencyRow;
}

/**
 * Runs every series round-robin: run i of each, then run i + 1 of each. Load from other
 * work on the machine then falls on all series alike instead of on whichever ran during it.
 */
export async function roundRobin(ctx: RunContext, runners: readonly SeriesRunner[], what: string): Promise<LatencyRow[]> {
  for (let i = 0; i <= ctx.runs; i++) {
    for (const r of runners) await r.run(i);
    if (i === 0 || i === ctx.runs || i % 5 === 0) ctx.log(`  ${what}: run ${i}/${ctx.runs}`);
  }
  return runners.map((r) => r.finish());
}

/** A fresh guest definition (new name and uuid) for a define run, also written to a file. */
export function defineCandidate(ctx: RunContext, tag: string, i: number): { xml: string; file: string } {
  const dir = join(ctx.work, 'xml');
  mkdirSync(dir, { recursive: true });
  const g = guestSpec(`def-${tag}-${i}`, join(ctx.work, 'images', `${tag}.img`));
  const file = join(dir, `${g.name}.xml`);
  const xml = guestXml(g);
  writeFileSync(file, xml);
  return { xml, file };
}

/**
 * Start / destroy / define through the library (one Hypervisor, as an API server would
 * hold), and QEMU ending on its own: each run does all four, with a raw QEMU start first.
 */
export async function libraryRunner(ctx: RunContext, stack: string): Promise<SeriesRunner> {
  const tag = `lib-${slug(stack)}`;
  const hv = await openHypervisor(join(ctx.work, tag), stack);
  closeLater(hv, ctx.janitor);
  const g = prepareGuest(ctx, tag);
  hv.define(guestXml(g));
  const rawOnce = rawPairer(ctx, tag);
  const m = {
    start: [] as number[],
    destroy: [] as number[],
    define: [] as number[],
    afterExit: [] as number[],
    raw: [] as number[],
    rawDestroy: [] as number[],
    cleaned: [] as number[],
    hook: [] as number[],
  };
  return {
    async run(i) {
      const rawPair = await rawOnce();
      const t0 = performance.now();
      const rec = await hv.start(g.name, { paused: true });
      const startMs = performance.now() - t0;
      const monitor = track(rec, ctx.janitor);
      const gone = ctx.watcher.watch(qemuId(rec));
      const t1 = performance.now();
      await hv.destroy(g.name);
      const destroyMs = performance.now() - t1;
      const doneAt = now();
      const goneAt = await gone;
      ctx.janitor.untrack(qemuId(rec).pid);
      await settle(monitor, ctx.janitor);
      const d = defineCandidate(ctx, tag, i);
      const t2 = performance.now();
      const def = hv.define(d.xml);
      const defineMs = performance.now() - t2;
      hv.undefine(def.name);
      const exit = await exitOnce(ctx, hv, g);
      if (i === 0) return; // warm-up (page cache, JIT): not counted
      m.raw.push(rawPair.start);
      m.rawDestroy.push(rawPair.destroy);
      m.start.push(startMs);
      m.destroy.push(destroyMs);
      if (goneAt !== undefined) m.afterExit.push(doneAt - goneAt);
      m.define.push(defineMs);
      m.cleaned.push(exit.cleanedMs);
      m.hook.push(exit.hookMs);
    },
    finish: () => ({
      contender: 'svirt library',
      stack,
      start: series(m.start),
      destroy: series(m.destroy),
      define: series(m.define),
      destroyAfterExit: series(m.afterExit),
      exitToCleanedUp: series(m.cleaned),
      monitorHook: series(m.hook),
      pairedRaw: series(m.raw),
      pairedRawDestroy: series(m.rawDestroy),
      notes: [],
    }),
  };
}

/**
 * QEMU ends on its own (SIGKILL from outside, as a crash or a guest poweroff would end it):
 * time from its exit until svirt has cleaned up (record deleted, after the image owner is
 * restored), which the per-guest monitor's `svirt reconcile` hook does.
 */
export async function exitOnce(ctx: RunContext, hv: Hypervisor, g: GuestSpec): Promise<{ cleanedMs: number; hookMs: number }> {
  const rec = await hv.start(g.name, { paused: true });
  const monitor = track(rec, ctx.janitor);
  const q = qemuId(rec);
  process.kill(q.pid, 'SIGKILL');
  await waitUntil(() => !isAlive(q), 10_000, `QEMU ${q.pid} to die`);
  const goneAt = now();
  ctx.janitor.untrack(q.pid);
  await waitUntil(() => hv.store.getRunning(rec.uuid) === undefined, 20_000, `the record of ${rec.name} to go`);
  const cleanedMs = now() - goneAt;
  const hookMs = (await settle(monitor, ctx.janitor)) + cleanedMs;
  return { cleanedMs, hookMs };
}

/** One untimed warm-up exit, then ctx.runs timed ones: each one's cleanup and hook times. */
export async function exitSeries(ctx: RunContext, hv: Hypervisor, g: GuestSpec): Promise<{ cleaned: number[]; hook: number[] }> {
  const cleaned: number[] = [];
  const hook: number[] = [];
  for (let i = 0; i <= ctx.runs; i++) {
    const e = await exitOnce(ctx, hv, g);
    if (i === 0) continue;
    cleaned.push(e.cleanedMs);
    hook.push(e.hookMs);
  }
  return { cleaned, hook };
}
