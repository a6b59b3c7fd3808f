/**
 * `SVIRT_TRACE_STEPS=1`: where a command spends its time, from svirt itself. Each lifecycle step
 * that has a crash point (lifecycle/crash-points.ts: a start's claim, cgroup, journal, labels,
 * monitor socket, helpers, QEMU's answer; a destroy's claim, kill, labels restored; …) is
 * written to stderr as `svirt: step NAME at MS ms` (since the process started), and kept in
 * the process for bench/cli-steps.ts, whose tables split a verb by these steps (docs/startup.md).
 * Without the variable, nothing: one read of the environment per step. A long-lived process
 * (`svirt serve` run with the variable) keeps only the newest MAX_KEPT steps.
 */
import { writeSync } from 'node:fs';

const KEY = Symbol.for('svirt.steps');
export const MAX_KEPT = 256;

export function traceStep(name: string): void {
  if (process.env['SVIRT_TRACE_STEPS'] !== '1') return;
  const at = process.uptime() * 1000;
  const g = globalThis as { [KEY]?: [string, number][] };
  const kept = (g[KEY] ??= []);
  kept.push([name, at]);
  if (kept.length > MAX_KEPT) kept.splice(0, kept.length - MAX_KEPT);
  try {
    writeSync(2, `svirt: step ${name} at ${at.toFixed(1)} ms\n`);
  } catch {
    // stderr closed or full (EAGAIN on a non-blocking pipe): the trace is not worth failing a command
  }
}

/** The steps traced so far in this process (bench/cli-steps.ts), oldest first; the bundles share them through globalThis. */
export function tracedSteps(): readonly [string, number][] {
  return (globalThis as { [KEY]?: [string, number][] })[KEY] ?? [];
}
