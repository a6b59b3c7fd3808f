import { libvirtRow, med, mmm, who, type BenchResults, type Target } from './bench-results.js';
import { cliVerbSummary, cliVerbTables, densityTable } from './report-cli.js';
import { migrationSummary, migrationTables } from './report-migration.js';
import { ms, ratio, table, verdict } from './stats.js';

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

  /** A heading and its table, only when some row has the measure. */
  const section = (title: string, head: string[], rows: string[][]): void => {
    if (rows.length > 0) parts.push(title, table(head, rows));
  };
  section(
    '### Start (until QMP answers `qmp_capabilities`)',
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
  );
  section(
    '### Destroy (until the call or command returns)',
    [
      'contender',
      'min',
      'median',
      'max',
      "raw QEMU's exit alongside (median)",
      '× raw QEMU',
      'of which after QEMU exited (median)',
    ],
    res.latency
      .filter((r) => r.destroy)
      .map((r) => [
        who(r),
        ...mmm(r.destroy),
        ms(med(r.pairedRawDestroy)),
        ratio(med(r.destroy), med(r.pairedRawDestroy) ?? rawDestroy),
        ms(med(r.destroyAfterExit)),
      ]),
  );
  section(
    '### Define (a new guest each run)',
    ['contender', 'min', 'median', 'max', '× libvirt'],
    res.latency.filter((r) => r.define).map((r) => [who(r), ...mmm(r.define), ratio(med(r.define), med(lv?.define))]),
  );
  parts.push(...cliVerbTables(res));
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
      parts.push(`### Density: ${d.guests} paused guests running at once (library starts, ${d.stack})`);
      parts.push(densityTable(d));
    }
  }
  parts.push(...migrationTables(res));
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
    .filter((r) => r.start || r.exitToCleanedUp)
    .map((r) => [
      who(r),
      r.start ? `${ms(med(r.start))} (${ratio(med(r.start), med(r.pairedRaw) ?? med(raw?.start))})` : '–',
      ms(med(r.destroy)),
      ms(med(r.define)),
      ms(med(r.exitToCleanedUp)),
    ]);
  const parts = [
    `${m.date.slice(0, 10)}, ${m.nproc} vCPUs, ${m.ramGiB} GiB RAM, Linux ${m.kernel}, ${m.qemu.replace(/^QEMU emulator version /, 'QEMU ')}, Node ${m.node}` +
      `${m.libvirt ? `, libvirt ${m.libvirt}` : ''}. Paused TCG guest (64 MiB, one raw virtio disk); medians of ${raw?.start?.summary.runs ?? 0} runs, ms.`,
    table(['contender', 'start (× raw QEMU)', 'destroy', 'define', 'QEMU exits by itself → cleaned up'], rows),
  ];
  const verbs = cliVerbSummary(res);
  if (verbs !== undefined) {
    parts.push(
      `Every CLI verb, spawned as a user spawns it (${res.headlineStack}); in brackets what it adds beyond its floor: ` +
        "start beyond raw QEMU + `node -e ''`, destroy beyond QEMU's own exit + `node -e ''`, the others beyond `node -e ''` " +
        '(each measured alongside, in the same environment).',
      verbs,
    );
  }
  // The headline stack's targets in full; the other stacks' only counted.
  const others = (res.options['stacks'] as string[] | undefined)?.filter((s) => s !== res.headlineStack) ?? [];
  const ofOther = (t: Target): boolean => others.some((s) => t.subject === s || t.subject.endsWith(`(${s})`));
  const shown = res.targets.filter((t) => !ofOther(t));
  const rest = res.targets.filter(ofOther);
  // One row per target: each subject (the headline stack's suffix dropped) with its verdict.
  const short = (subject: string): string => subject.replace(` (${res.headlineStack})`, '').replace(/^svirt /, '');
  const byTarget = new Map<string, Target[]>();
  for (const t of shown) byTarget.set(t.target, [...(byTarget.get(t.target) ?? []), t]);
  parts.push(
    table(
      ['target', `measured (median; ${res.headlineStack})`],
      [...byTarget].map(([target, ts]) => [
        target,
        ts
          .map(
            (t) =>
              `${ts.length > 1 || t.subject !== res.headlineStack ? `${short(t.subject)}: ` : ''}${t.measured} ${verdict(t.met)}`,
          )
          .join('; '),
      ]),
    ),
  );
  const count = (ts: Target[]): string =>
    `${ts.filter((t) => t.met === true).length} met, ${ts.filter((t) => t.met === false).length} missed`;
  parts.push(
    `Targets: ${count(res.targets)} in all` +
      (rest.length > 0 ? `; of the other stacks' (${others.join(', ')}), not listed: ${count(rest)}` : '') +
      '.',
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
    const lists = d.lists
      .map((l) => `${ms(l.list.summary.median)} ms against node's ${ms(l.pairedNode.summary.median)} (${l.env})`)
      .join(', ');
    parts.push(
      `Density: ${d.started}/${d.guests} paused guests running, started ${d.startBatch} at a time in ${ms(d.startAllMs)} ms; ` +
        `svirt keeps ${d.svirtProcsPerGuest} processes per guest (monitor + backup), ${ms(d.svirtPssKb.summary.median)} kB Pss ` +
        `(QEMU itself: ${ms(d.qemuPssKb.summary.median / 1024)} MiB Pss, ${ms(d.qemuRssKb.summary.median / 1024)} MiB RSS); ` +
        `\`svirt list\` with all of them running: ${lists}.`,
    );
  }
  const mig = migrationSummary(res);
  if (mig !== undefined) parts.push(mig);
  return parts.join('\n\n') + '\n';
}
