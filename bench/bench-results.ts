/** The result of one bench run (what bench/bench.ts writes as JSON) and small helpers to read it. */
import type { DensityResult } from './density.js';
import type { DevicesResult } from './devices.js';
import type { LibvirtResult } from './libvirt.js';
import type { MigrationResult } from './migration.js';
import type { LabelScale, ReconcileScale } from './scale.js';
import type { StepTimes } from './start-steps.js';
import type { CliStepsResult, StartupResult } from './startup.js';
import { ms, type Series } from './stats.js';
import type { LatencyRow } from './svirt-runs.js';

export interface Machine {
  readonly date: string;
  readonly nproc: number;
  readonly cpu: string;
  readonly ramGiB: number;
  readonly kernel: string;
  readonly qemu: string;
  readonly node: string;
  readonly libvirt?: string;
  readonly kvm: string;
}

export interface Target {
  readonly target: string;
  readonly subject: string;
  readonly measured: string;
  readonly limit: string;
  readonly met: boolean | undefined;
}

export interface BenchResults {
  readonly machine: Machine;
  readonly options: Record<string, unknown>;
  readonly headlineStack: string;
  startup?: StartupResult;
  cliSteps?: CliStepsResult[];
  importGraph?: Record<string, { files: number; packages: string[]; list: string[] }>;
  readonly latency: LatencyRow[];
  readonly steps: StepTimes[];
  libvirt?: LibvirtResult | { skipped: string };
  labels?: LabelScale[];
  reconcile?: ReconcileScale;
  density?: DensityResult | { skipped: string };
  devices?: DevicesResult | { skipped: string };
  migration?: MigrationResult | { skipped: string };
  targets: Target[];
  skipped: string[];
  durationS: number;
  cleanup: string[];
  /** 1/5/15-minute load averages when each logged step began (others may share the machine). */
  readonly load: Record<string, number[]>;
}

export const med = (s: Series | undefined): number | undefined => s?.summary.median;

export function mmm(s: Series | undefined): string[] {
  if (!s || s.summary.runs === 0) return ['–', '–', '–'];
  return [ms(s.summary.min), ms(s.summary.median), ms(s.summary.max)];
}

export function who(r: LatencyRow): string {
  return r.stack === '–' ? r.contender : `${r.contender} (${r.stack})`;
}

export function libvirtRow(res: BenchResults): LatencyRow | undefined {
  return res.libvirt && 'row' in res.libvirt ? res.libvirt.row : undefined;
}
