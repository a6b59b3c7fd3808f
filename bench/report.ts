import type { DensityResult } from './density.js';
import type { DevicesResult } from './devices.js';
import type { LibvirtResult } from './libvirt.js';
import type { LabelScale, ReconcileScale } from './scale.js';
import type { StepTimes } from './start-steps.js';
import type { CliStepsResult, StartupResult } from './startup.js';
import { ms, ratio, table, verdict, type Series } from './stats.js';
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
  targets: Target[];
  skipped: string[];
  durationS: number;
  cleanup: string[];
  /** 1/5/15-minute load averages when each logged step began (others may share the machine). */
  readonly load: Record<string, number[]>;
}

const med = (s: Series | undefined): number | undefined => s?.summary.median;

function mmm(s: Series | undefined): string[] {
  if (!s || s.summary.runs === 0) return ['–', '–', '–'];
  return [ms(s.summary.min), ms(s.summary.median), ms(s.summary.max)];
}

function who(r: LatencyRow): string {
  return r.stack === '–' ? r.contender : `${r.contender} (${r.stack})`;
}

export function libvirtRow(res: BenchResults): LatencyRow | undefined {
  return res.libvirt && 'row' in res.libvirt ? res.libvirt.row : undefined;
}

/** The targets of issue 7, computed from the medians of this run. */
export function computeTargets(res: BenchResults): Target[] {
  const out: Target[] = [];
  const raw = res.latency.find((r) => r.contender === 'raw QEMU');
  const rawStart = med(raw?.start);
  const node = res.startup?.nodeEmpty.summary.median;
  const nodeNoCa = res.startup?.nodeEmptyNoCa.summary.median;
  const lv = libvirtRow(res);
  for (const r of res.latency) {
    // Each row's raw QEMU (and node) baseline was measured alternately with its own runs.
    const rawBase = med(r.pairedRaw) ?? rawStart;
    if (r.contender === 'svirt library' && rawBase !== undefined) {
      const x = med(r.start);
      if (x !== undefined)
        out.push({
          target: 'library start ≤ 1.2× raw QEMU',
          subject: r.stack,
          measured: `${ms(x)} ms vs raw ${ms(rawBase)} = ${ratio(x, rawBase)}`,
          limit: `≤ ${ms(1.2 * rawBase)} ms`,
          met: x <= 1.2 * rawBase,
        });
    }
    if (r.contender.startsWith('svirt CLI') && rawBase !== undefined) {
      const noCa = r.contender.includes('without');
      const base = med(r.pairedNode) ?? (noCa ? nodeNoCa : node);
      const x = med(r.start);
      if (x !== undefined && base !== undefined) {
        const extra = x - rawBase - base;
        out.push({
          target: `CLI start ≤ raw + node -e '' + 40 ms${noCa ? ' (no NODE_EXTRA_CA_CERTS)' : ''}`,
          subject: r.stack,
          measured: `${ms(x)} ms = raw ${ms(rawBase)} + node ${ms(base)} + ${ms(extra)}`,
          limit: `≤ ${ms(rawBase + base + 40)} ms`,
          met: extra <= 40,
        });
      }
    }
  }
  if (res.devices && !('skipped' in res.devices)) {
    const d = res.devices;
    const x = d.svirtStart.summary.median;
    const base = d.rawStart.summary.median;
    out.push({
      target: 'start with a NIC, VNC and a channel ≤ 1.2× raw QEMU with the same devices',
      subject: `svirt library (${d.stack})`,
      measured: `${ms(x)} ms vs raw QEMU + passt ${ms(base)} = ${ratio(x, base)}`,
      limit: `≤ ${ms(1.2 * base)} ms`,
      met: x <= 1.2 * base,
    });
  }
  const lvStart = med(lv?.start);
  if (lvStart !== undefined) {
    for (const r of res.latency.filter((x) => x.contender === 'svirt library' || x.contender === 'svirt CLI')) {
      const x = med(r.start);
      if (x !== undefined)
        out.push({
          target: "svirt start ≤ 0.3× libvirt's",
          subject: who(r),
          measured: `${ms(x)} ms = ${ratio(x, lvStart)}`,
          limit: `≤ ${ms(0.3 * lvStart)} ms`,
          met: x <= 0.3 * lvStart,
        });
    }
  } else {
    out.push({
      target: "svirt start ≤ 0.3× libvirt's",
      subject: 'all',
      measured: 'libvirt not measured',
      limit: '–',
      met: undefined,
    });
  }
  for (const r of res.latency.filter((x) => x.contender.startsWith('svirt'))) {
    const d = med(r.destroyAfterExit);
    if (d !== undefined && r.contender !== 'svirt CLI without NODE_EXTRA_CA_CERTS') {
      out.push({
        target: 'destroy done ≤ 50 ms after QEMU exits (destroy)',
        subject: who(r),
        measured: `${ms(d)} ms`,
        limit: '≤ 50 ms',
        met: d <= 50,
      });
    }
    const e = med(r.exitToCleanedUp);
    if (e !== undefined) {
      out.push({
        target: 'cleanup done ≤ 50 ms after QEMU exits on its own (monitor hook)',
        subject: who(r),
        measured: `${ms(e)} ms`,
        limit: '≤ 50 ms',
        met: e <= 50,
      });
    }
  }
  return out;
}

function loadRange(load: Record<string, number[]>): string {
  const l1 = Object.values(load)
    .map((l) => l[0] ?? NaN)
    .filter(Number.isFinite);
  if (l1.length === 0) return 'unknown';
  return `${Math.min(...l1).toFixed(2)}–${Math.max(...l1).toFixed(2)}`;
}

export function markdown(res: BenchResults): string {
  const m = res.machine;
  const parts: string[] = [];
  parts.push(
    `Measured ${m.date} on ${m.nproc} vCPUs (${m.cpu}), ${m.ramGiB} GiB RAM, Linux ${m.kernel}, ${m.qemu}, Node ${m.node}` +
      `${m.libvirt ? `, libvirt ${m.libvirt}` : ''}; guests are TCG (\`<domain type='qemu'>\`), paused, 64 MiB, one raw virtio disk. ` +
      `${res.latency[0]?.start?.summary.runs ?? 0} timed runs per cell after one warm-up; times in ms (min / median / max). ` +
      `1-minute load average during the run: ${loadRange(res.load)} (the machine is shared: other work runs on the same ${m.nproc} CPUs). ` +
      "Every series also starts raw QEMU (and, for the CLI, `node -e ''`) alternately with its own runs; ratios and targets use those paired baselines.",
  );
  const raw = res.latency.find((r) => r.contender === 'raw QEMU');
  const rawStart = med(raw?.start);
  const rawDestroy = med(raw?.destroy);
  const lv = libvirtRow(res);

  parts.push('### Start (until QMP answers `qmp_capabilities`)');
  parts.push(
    table(
      ['contender', 'min', 'median', 'max', 'raw QEMU alongside (median)', '× raw QEMU', '× libvirt'],
      res.latency
        .filter((r) => r.start)
        .map((r) => [
          who(r),
          ...mmm(r.start),
          ms(med(r.pairedRaw)),
          ratio(med(r.start), med(r.pairedRaw) ?? rawStart),
          ratio(med(r.start), med(lv?.start)),
        ]),
    ),
  );
  parts.push('### Destroy (until the call or command returns)');
  parts.push(
    table(
      ['contender', 'min', 'median', 'max', '× raw QEMU', 'of which after QEMU exited (median)'],
      res.latency
        .filter((r) => r.destroy)
        .map((r) => [who(r), ...mmm(r.destroy), ratio(med(r.destroy), rawDestroy), ms(med(r.destroyAfterExit))]),
    ),
  );
  parts.push('### Define (a new guest each run)');
  parts.push(
    table(
      ['contender', 'min', 'median', 'max', '× libvirt'],
      res.latency.filter((r) => r.define).map((r) => [who(r), ...mmm(r.define), ratio(med(r.define), med(lv?.define))]),
    ),
  );
  const exits = res.latency.filter((r) => r.exitToCleanedUp);
  if (exits.length > 0) {
    parts.push('### QEMU exits on its own (killed from outside): until its labels are restored and its record is gone');
    parts.push(
      table(
        ['contender', 'min', 'median', 'max', 'monitor hook done (median)'],
        exits.map((r) => [who(r), ...mmm(r.exitToCleanedUp), ms(med(r.monitorHook))]),
      ),
    );
  }
  if (res.targets.length > 0) {
    parts.push('### Targets (shown, not asserted)');
    parts.push(
      table(
        ['target', 'subject', 'measured (median)', 'limit', 'verdict'],
        res.targets.map((t) => [t.target, t.subject, t.measured, t.limit, verdict(t.met)]),
      ),
    );
  }
  if (res.steps.length > 0) {
    parts.push('### Where a start spends its time (median ms per step)');
    for (const s of res.steps) {
      parts.push(`${s.contender}${s.stack ? ` (${s.stack})` : ''}:`);
      parts.push(
        table(
          ['step', 'min', 'median', 'max'],
          s.steps.map((x) => [x.step, ...mmm(x.ms)]),
        ),
      );
    }
  }
  if (res.startup) {
    const st = res.startup;
    parts.push('### CLI start-up: node itself and what each dependency adds');
    parts.push(
      table(
        ['process', 'min', 'median', 'max', "over `node -e ''`"],
        [
          [`node -e '' (NODE_EXTRA_CA_CERTS=${st.extraCaCerts ?? 'unset'})`, ...mmm(st.nodeEmpty), '–'],
          [
            "node -e '' without NODE_EXTRA_CA_CERTS",
            ...mmm(st.nodeEmptyNoCa),
            ms(st.nodeEmptyNoCa.summary.median - st.nodeEmpty.summary.median),
          ],
          ...st.items.map((i) => [i.item, ...mmm(i.ms), i.overNode === undefined ? '–' : `+${ms(i.overNode)}`]),
        ],
      ),
    );
  }
  if (res.importGraph) {
    parts.push('Modules each CLI entry loads before doing anything (static import closure in dist/):');
    parts.push(
      table(
        ['entry', 'our modules', 'packages'],
        Object.entries(res.importGraph).map(([entry, g]) => [entry, String(g.files), g.packages.join(', ') || '–']),
      ),
    );
  }
  for (const c of res.cliSteps ?? []) {
    parts.push(`\`svirt ${c.verb}\` (${c.stack}) step by step, in one process (bench/cli-steps.ts):`);
    parts.push(
      table(
        ['step', 'min', 'median', 'max'],
        c.steps.map((x) => [x.step, ...mmm(x.ms)]),
      ),
    );
  }
  if (res.labels) {
    parts.push('### Labels at scale (genLabel against the real SQLite store, reservation included)');
    parts.push(
      table(
        ['driver', 'live reservations', 'runs', 'min', 'median', 'max', 'note'],
        res.labels.map((l) => [l.driver, String(l.live), String(l.perLabel.summary.runs), ...mmm(l.perLabel), l.note ?? '']),
      ),
    );
  }
  if (res.reconcile) {
    const r = res.reconcile;
    parts.push(`### Reconcile with ${r.records} running records (all alive: checked, none cleaned)`);
    parts.push(
      table(
        ['what', 'min', 'median', 'max'],
        [
          ...r.variants.flatMap((v) => [
            [`Hypervisor.reconcile(), ${v.stack} guests (${v.note})`, ...mmm(v.library)],
            [`\`svirt reconcile\` command, ${v.stack} guests`, ...mmm(v.cli)],
          ]),
          ['`svirt reconcile` command, empty store', ...mmm(r.cliEmpty)],
        ],
      ),
    );
  }
  if (res.density) {
    if ('skipped' in res.density) parts.push(`### Density\nskipped: ${res.density.skipped}`);
    else {
      const d = res.density;
      parts.push(`### Density: ${d.guests} paused guests started at once (library, ${d.stack})`);
      parts.push(
        table(
          ['measure', 'value'],
          [
            [
              'started',
              `${d.started}/${d.guests}${d.failures.length ? ` (failures: ${d.failures.slice(0, 3).join('; ')})` : ''}`,
            ],
            ['all started (wall)', `${ms(d.startAllMs)} ms (${ms(d.startAllMs / Math.max(1, d.started))} ms per guest)`],
            ['one guest within the burst (min / median / max)', `${mmm(d.perGuestStart).join(' / ')} ms`],
            [
              'svirt per running guest: monitor VmRSS (median)',
              `${ms(d.monitorRssKb.summary.median)} kB (Pss ${ms(d.monitorPssKb.summary.median)} kB)`,
            ],
            ['svirt for all guests (sum of monitor VmRSS)', `${d.svirtTotalRssMiB} MiB`],
            [
              'QEMU per guest: VmRSS (median)',
              `${ms(d.qemuRssKb.summary.median / 1024)} MiB (Pss ${ms(d.qemuPssKb.summary.median / 1024)} MiB)`,
            ],
            ['QEMU for all guests (sum of VmRSS)', `${d.qemuTotalRssMiB} MiB`],
            ['all destroyed (wall)', `${ms(d.destroyAllMs)} ms`],
            ['then until every monitor hook exited', `${ms(d.hooksQuietMs)} ms`],
          ],
        ),
      );
    }
  }
  if (res.devices) {
    if ('skipped' in res.devices) parts.push(`### Start with devices\nskipped: ${res.devices.skipped}`);
    else {
      const d = res.devices;
      parts.push(`### Start with devices: ${d.devices} (paused; svirt and raw alternately)`);
      parts.push(
        table(
          ['contender', 'min', 'median', 'max', '× raw QEMU + passt'],
          [
            [
              'raw: QEMU, then passt (socketpair, until sandboxed) beside it, until QMP answers',
              ...mmm(d.rawStart),
              ratio(d.rawStart.summary.median, d.rawStart.summary.median),
            ],
            ['of which passt until sandboxed', ...mmm(d.rawPasst), '–'],
            ['of which QEMU until QMP answers', ...mmm(d.rawQemu), '–'],
            [`svirt library (${d.stack})`, ...mmm(d.svirtStart), ratio(d.svirtStart.summary.median, d.rawStart.summary.median)],
            ['destroy: raw (QEMU and passt gone)', ...mmm(d.rawDestroy), '–'],
            [`destroy: svirt library (${d.stack})`, ...mmm(d.svirtDestroy), '–'],
          ],
        ),
      );
    }
  }
  if (res.libvirt) {
    if ('skipped' in res.libvirt) parts.push(`### libvirt\nskipped: ${res.libvirt.skipped}`);
    else {
      const l = res.libvirt;
      parts.push(
        `libvirt: first connection (QEMU capability probe) ${ms(l.firstConnectMs)} ms, first start ${ms(l.firstStartMs)} ms (not counted); ` +
          `daemons resident while a guest runs: libvirtd ${l.daemonRssKb.libvirtd ?? '–'} kB, virtlogd ${l.daemonRssKb.virtlogd ?? '–'} kB.` +
          (l.row.notes.length > 0 ? ` Set-up: ${l.row.notes.join('; ')}.` : ''),
      );
    }
  }
  if (res.skipped.length > 0) parts.push(`Skipped: ${res.skipped.join('; ')}`);
  return parts.join('\n\n') + '\n';
}

/** The short form for the README: medians per contender, the targets' verdicts, density. */
export function summaryMarkdown(res: BenchResults): string {
  const m = res.machine;
  const raw = res.latency.find((r) => r.contender === 'raw QEMU');
  const rows = res.latency
    .filter((r) => r.start && !r.contender.includes('without'))
    .map((r) => [
      who(r),
      `${ms(med(r.start))} (${ratio(med(r.start), med(r.pairedRaw) ?? med(raw?.start))})`,
      ms(med(r.destroy)),
      ms(med(r.define)),
      ms(med(r.exitToCleanedUp)),
    ]);
  const parts = [
    `${m.date.slice(0, 10)}, ${m.nproc} vCPUs, ${m.ramGiB} GiB RAM, Linux ${m.kernel}, ${m.qemu.replace(/^QEMU emulator version /, 'QEMU ')}, Node ${m.node}` +
      `${m.libvirt ? `, libvirt ${m.libvirt}` : ''}. Paused TCG guest (64 MiB, one raw virtio disk); medians of ${raw?.start?.summary.runs ?? 0} runs, ms.`,
    table(['contender', 'start (× raw QEMU)', 'destroy', 'define', 'QEMU exits → cleaned up'], rows),
  ];
  const missed = res.targets.filter((t) => t.met === false);
  const met = res.targets.filter((t) => t.met === true);
  parts.push(
    `Targets: ${met.length} met, ${missed.length} missed${missed.length ? ` (${[...new Set(missed.map((t) => t.target))].join('; ')})` : ''}.`,
  );
  if (res.devices && !('skipped' in res.devices)) {
    const d = res.devices;
    parts.push(
      `With a passt NIC, VNC on a unix socket and a guest-agent channel: svirt library (${d.stack}) starts in ` +
        `${ms(d.svirtStart.summary.median)} ms, raw QEMU with the same devices (passt included) in ` +
        `${ms(d.rawStart.summary.median)} ms: ${ratio(d.svirtStart.summary.median, d.rawStart.summary.median)} ` +
        `(target ≤ 1.2×: ${verdict(d.svirtStart.summary.median <= 1.2 * d.rawStart.summary.median)}).`,
    );
  }
  if (res.density && !('skipped' in res.density)) {
    const d = res.density;
    parts.push(
      `Density: ${d.started}/${d.guests} paused guests started at once in ${ms(d.startAllMs)} ms; svirt keeps one monitor per guest, ` +
        `${ms(d.monitorRssKb.summary.median)} kB resident (QEMU itself: ${ms(d.qemuRssKb.summary.median / 1024)} MiB).`,
    );
  }
  return parts.join('\n\n') + '\n';
}
