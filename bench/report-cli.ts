/** The report's CLI-verb tables (issue 17): every verb per series, and what each adds to its floor. */
import { libvirtRow, med, who, type BenchResults } from './bench-results.js';
import { CLI_VERBS, VERB_LABEL, type CliVerb } from './cli-verbs.js';
import { DESTROY_BATCH, type DensityResult } from './density.js';
import { ms, table } from './stats.js';
import { overFloor } from './targets.js';
import type { LatencyRow } from './svirt-runs.js';

const cliRows = (res: BenchResults): LatencyRow[] => res.latency.filter((r) => r.contender.startsWith('svirt CLI'));

function range(r: LatencyRow, verb: CliVerb): string {
  const s = r[verb]?.summary;
  return s && s.runs > 0 ? `${ms(s.median)} (${ms(s.min)}–${ms(s.max)})` : '–';
}

function over(r: LatencyRow, verb: CliVerb): string {
  const o = overFloor(r, verb);
  return o ? `${o.over >= 0 ? '+' : ''}${ms(o.over)}` : '–';
}

/** The full report's section: medians (min–max), then each verb beyond its floor. */
export function cliVerbTables(res: BenchResults): string[] {
  const rows = cliRows(res);
  if (rows.length === 0) return [];
  const lv = libvirtRow(res);
  const parts: string[] = [];
  parts.push(
    "### CLI verbs, spawn to exit: median (min–max), with `node -e ''` in the same environment alongside",
    "One run goes through a guest's life: `list` on an empty store, `define` (a new guest), `start --paused`, " +
      '`list`, `dominfo`, `save`, `restore --paused`, `destroy`; virsh does the same on its own guest ' +
      '(its `list (empty store)` is a `virsh list` with no guest running).',
  );
  parts.push(
    table(
      ['verb', ...rows.map(who), ...(lv ? ['virsh'] : [])],
      [
        ["node -e '' (paired)", ...rows.map((r) => `${ms(med(r.pairedNode))}`), ...(lv ? ['–'] : [])],
        ['raw QEMU start (paired)', ...rows.map((r) => ms(med(r.pairedRaw))), ...(lv ? [ms(med(lv.pairedRaw))] : [])],
        [
          "raw QEMU's exit (paired)",
          ...rows.map((r) => ms(med(r.pairedRawDestroy))),
          ...(lv ? [ms(med(lv.pairedRawDestroy))] : []),
        ],
        ...CLI_VERBS.map((v) => [VERB_LABEL[v], ...rows.map((r) => range(r, v)), ...(lv ? [range(lv, v)] : [])]),
        [
          'destroy: after QEMU exited',
          ...rows.map((r) => ms(med(r.destroyAfterExit))),
          ...(lv ? [ms(med(lv.destroyAfterExit))] : []),
        ],
      ],
    ),
  );
  parts.push(
    "Beyond the floor (median ms): start beyond raw QEMU + `node -e ''`, destroy beyond QEMU's own exit " +
      "(a raw QEMU's SIGTERM to exit) + `node -e ''`, every other verb beyond `node -e ''`:",
  );
  parts.push(
    table(
      ['verb', ...rows.map(who)],
      CLI_VERBS.map((v) => [VERB_LABEL[v], ...rows.map((r) => over(r, v))]),
    ),
  );
  return parts;
}

/** The README's form: the headline stack's CLI with and without NODE_EXTRA_CA_CERTS, and virsh. */
export function cliVerbSummary(res: BenchResults): string | undefined {
  const rows = cliRows(res).filter((r) => r.stack === res.headlineStack);
  if (rows.length === 0) return undefined;
  const lv = libvirtRow(res);
  const cell = (r: LatencyRow, v: CliVerb): string => `${ms(med(r[v]))} (${over(r, v)})`;
  return table(
    ['verb (ms; beyond the floor)', ...rows.map(who), ...(lv ? ['libvirt (virsh)'] : [])],
    [
      ["node -e '' (the floor)", ...rows.map((r) => ms(med(r.pairedNode))), ...(lv ? ['–'] : [])],
      ...CLI_VERBS.map((v) => [VERB_LABEL[v], ...rows.map((r) => cell(r, v)), ...(lv ? [ms(med(lv[v]))] : [])]),
    ],
  );
}

/** The full report's density section. */
export function densityTable(d: DensityResult): string {
  const rows: string[][] = [
    ['started', `${d.started}/${d.guests}${d.failures.length ? ` (failures: ${d.failures.slice(0, 3).join('; ')})` : ''}`],
    [
      `all started (wall, ${d.startBatch} at a time)`,
      `${ms(d.startAllMs)} ms (${ms(d.startAllMs / Math.max(1, d.started))} ms per guest)`,
    ],
    [
      'one guest within its burst (min / median / max)',
      `${ms(d.perGuestStart.summary.min)} / ${ms(d.perGuestStart.summary.median)} / ${ms(d.perGuestStart.summary.max)} ms`,
    ],
    [
      "svirt's own memory per running guest: Pss of monitor + backup + helpers (median)",
      `${ms(d.svirtPssKb.summary.median)} kB (max ${ms(d.svirtPssKb.summary.max)}; ${d.svirtProcsPerGuest} processes, ${d.helpersPerGuest} helpers)`,
    ],
    [
      'of which the monitor / its backup (Pss, median)',
      `${ms(d.monitorPssKb.summary.median)} / ${ms(d.backupPssKb.summary.median)} kB (monitor VmRSS ${ms(d.monitorRssKb.summary.median)} kB)`,
    ],
    ['svirt for all guests (sum of Pss)', `${d.svirtTotalPssMiB} MiB`],
    [
      'QEMU per guest: VmRSS (median)',
      `${ms(d.qemuRssKb.summary.median / 1024)} MiB (Pss ${ms(d.qemuPssKb.summary.median / 1024)} MiB)`,
    ],
    ['QEMU for all guests (sum of VmRSS / of Pss)', `${d.qemuTotalRssMiB} / ${d.qemuTotalPssMiB} MiB`],
    ...d.lists.map((l) => [
      `\`svirt list\` (CLI) with ${l.shown} running, ${l.env}: min / median / max`,
      `${ms(l.list.summary.min)} / ${ms(l.list.summary.median)} / ${ms(l.list.summary.max)} ms ` +
        `(node -e '' alongside ${ms(l.pairedNode.summary.median)}: +${ms(l.list.summary.median - l.pairedNode.summary.median)})`,
    ]),
    [`all destroyed (destroy calls, ${DESTROY_BATCH} at a time, summed)`, `${ms(d.destroyAllMs)} ms`],
    ["then until each batch's monitors exited (summed)", `${ms(d.hooksQuietMs)} ms`],
  ];
  return table(['measure', 'value'], rows);
}
