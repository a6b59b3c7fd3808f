/**
 * The targets (issues 7, 13 and 17), computed from the medians of one run: shown, not
 * asserted. Each CLI series is judged against its own paired baselines (raw QEMU and
 * `node -e ''` in the same environment, measured alternately with its runs).
 */
import { libvirtRow, med, who, type BenchResults, type Target } from './bench-results.js';
import { VERB_LABEL, type CliVerb } from './cli-verbs.js';
import { ms, ratio } from './stats.js';
import type { LatencyRow } from './svirt-runs.js';

/** CLI start ≤ raw QEMU + `node -e ''` + this. */
export const CLI_START_OVER_FLOOR_MS = 20;
/** define, list, dominfo, destroy (beyond QEMU's own exit) ≤ `node -e ''` + this. */
export const CLI_VERB_OVER_NODE_MS = 15;
/** Cleanup of a QEMU that exits by itself (crash, poweroff) ≤ this after its exit. */
export const EXIT_CLEANUP_MS = 20;
/** destroy done ≤ this after QEMU has exited (issue 7). */
export const DESTROY_AFTER_EXIT_MS = 50;
/** svirt's own memory per running guest (monitor + backup + helpers, Pss). */
export const DENSITY_SVIRT_KB = 1024;
/** `svirt list` with every density guest running ≤ `node -e ''` + this. */
export const DENSITY_LIST_OVER_NODE_MS = 20;
/** The density the targets of issue 17 are set for. */
export const DENSITY_GUESTS = 200;

/** The verbs judged against `node -e ''` + CLI_VERB_OVER_NODE_MS alone (no QEMU inside). */
const NODE_BOUND: readonly CliVerb[] = ['define', 'listEmpty', 'list', 'dominfo'];
/** The verbs that must beat virsh's. */
const VS_VIRSH: readonly CliVerb[] = ['start', 'destroy', 'save', 'restore'];

const isCli = (r: LatencyRow): boolean => r.contender.startsWith('svirt CLI');

/**
 * What a CLI verb costs beyond its floor, ms: start beyond raw QEMU + node, destroy beyond
 * QEMU's own exit (a raw QEMU's SIGTERM-to-exit) + node, the others beyond node.
 */
export function overFloor(r: LatencyRow, verb: CliVerb): { over: number; floor: string } | undefined {
  const x = med(r[verb]);
  const node = med(r.pairedNode);
  if (x === undefined || node === undefined) return undefined;
  if (verb === 'start') {
    const raw = med(r.pairedRaw);
    return raw === undefined ? undefined : { over: x - raw - node, floor: `raw ${ms(raw)} + node ${ms(node)}` };
  }
  if (verb === 'destroy') {
    const exit = med(r.pairedRawDestroy);
    return exit === undefined ? undefined : { over: x - exit - node, floor: `QEMU's exit ${ms(exit)} + node ${ms(node)}` };
  }
  return { over: x - node, floor: `node ${ms(node)}` };
}

function cliTargets(res: BenchResults, r: LatencyRow): Target[] {
  const out: Target[] = [];
  const lv = libvirtRow(res);
  const start = overFloor(r, 'start');
  if (start) {
    const x = med(r.start) as number;
    out.push({
      target: `CLI start ≤ raw QEMU + node -e '' + ${CLI_START_OVER_FLOOR_MS} ms`,
      subject: who(r),
      measured: `${ms(x)} ms = ${start.floor} + ${ms(start.over)}`,
      limit: `≤ ${ms(x - start.over + CLI_START_OVER_FLOOR_MS)} ms`,
      met: start.over <= CLI_START_OVER_FLOOR_MS,
    });
  }
  for (const verb of [...NODE_BOUND, 'destroy'] as const) {
    const o = overFloor(r, verb);
    if (!o) continue;
    const x = med(r[verb]) as number;
    const virsh = verb === 'define' && med(lv?.define) !== undefined ? ` (virsh define ${ms(med(lv?.define))})` : '';
    out.push({
      target:
        verb === 'destroy'
          ? `CLI destroy ≤ QEMU's own exit + node -e '' + ${CLI_VERB_OVER_NODE_MS} ms`
          : `CLI ${VERB_LABEL[verb]} ≤ node -e '' + ${CLI_VERB_OVER_NODE_MS} ms`,
      subject: who(r),
      measured: `${ms(x)} ms = ${o.floor} + ${ms(o.over)}${virsh}`,
      limit: `≤ ${ms(x - o.over + CLI_VERB_OVER_NODE_MS)} ms`,
      met: o.over <= CLI_VERB_OVER_NODE_MS,
    });
  }
  if (lv) {
    for (const verb of VS_VIRSH) {
      const x = med(r[verb]);
      const v = med(lv[verb]);
      if (x === undefined || v === undefined) continue;
      out.push({
        target: `CLI ${verb} faster than virsh ${verb}`,
        subject: who(r),
        measured: `${ms(x)} ms vs virsh ${ms(v)} = ${ratio(x, v)}`,
        limit: `< ${ms(v)} ms`,
        met: x < v,
      });
    }
  }
  return out;
}

function densityTargets(res: BenchResults): Target[] {
  const d = res.density;
  if (!d || 'skipped' in d) return [];
  const subject = `${d.started} of ${d.guests} guests running${d.guests < DENSITY_GUESTS ? ` (the target is for ${DENSITY_GUESTS})` : ''}`;
  const pss = d.svirtPssKb.summary.median;
  const out: Target[] = [
    {
      target: `svirt's own memory per running guest ≤ ${DENSITY_SVIRT_KB / 1024} MiB (Pss: monitor + backup + helpers)`,
      subject,
      measured: `${ms(pss)} kB (monitor ${ms(d.monitorPssKb.summary.median)} + backup ${ms(d.backupPssKb.summary.median)})`,
      limit: `≤ ${DENSITY_SVIRT_KB} kB`,
      met: pss <= DENSITY_SVIRT_KB,
    },
  ];
  for (const l of d.lists) {
    const x = l.list.summary.median;
    const node = l.pairedNode.summary.median;
    out.push({
      target: `\`svirt list\` with every guest running ≤ node -e '' + ${DENSITY_LIST_OVER_NODE_MS} ms`,
      subject: `${subject}, ${l.env}`,
      measured: `${ms(x)} ms = node ${ms(node)} + ${ms(x - node)}`,
      limit: `≤ ${ms(node + DENSITY_LIST_OVER_NODE_MS)} ms`,
      met: x - node <= DENSITY_LIST_OVER_NODE_MS,
    });
  }
  return out;
}

/** Every target this run can judge, in the order the report lists them. */
export function computeTargets(res: BenchResults): Target[] {
  const out: Target[] = [];
  const raw = res.latency.find((r) => r.contender === 'raw QEMU');
  const lv = libvirtRow(res);
  for (const r of res.latency.filter((x) => x.contender === 'svirt library')) {
    const x = med(r.start);
    const base = med(r.pairedRaw) ?? med(raw?.start);
    if (x !== undefined && base !== undefined)
      out.push({
        target: 'library start ≤ 1.2× raw QEMU',
        subject: r.stack,
        measured: `${ms(x)} ms vs raw ${ms(base)} = ${ratio(x, base)}`,
        limit: `≤ ${ms(1.2 * base)} ms`,
        met: x <= 1.2 * base,
      });
  }
  for (const r of res.latency.filter(isCli)) out.push(...cliTargets(res, r));
  if (!lv && res.latency.some(isCli)) {
    out.push({
      target: 'CLI start, destroy, save, restore faster than virsh',
      subject: 'svirt CLI',
      measured: 'libvirt not measured (--with-libvirt)',
      limit: '–',
      met: undefined,
    });
  }
  for (const r of res.latency.filter((x) => x.contender.startsWith('svirt'))) {
    const e = med(r.exitToCleanedUp);
    if (e !== undefined)
      out.push({
        target: `cleanup done ≤ ${EXIT_CLEANUP_MS} ms after QEMU exits on its own`,
        subject: who(r),
        measured: `${ms(e)} ms`,
        limit: `≤ ${EXIT_CLEANUP_MS} ms`,
        met: e <= EXIT_CLEANUP_MS,
      });
  }
  for (const r of res.latency.filter((x) => x.contender.startsWith('svirt'))) {
    const d = med(r.destroyAfterExit);
    if (d !== undefined)
      out.push({
        target: `destroy done ≤ ${DESTROY_AFTER_EXIT_MS} ms after QEMU exits (destroy)`,
        subject: who(r),
        measured: `${ms(d)} ms`,
        limit: `≤ ${DESTROY_AFTER_EXIT_MS} ms`,
        met: d <= DESTROY_AFTER_EXIT_MS,
      });
  }
  const lvStart = med(lv?.start);
  for (const r of res.latency.filter((x) => x.contender === 'svirt library' || isCli(x))) {
    const x = med(r.start);
    if (x !== undefined && lvStart !== undefined)
      out.push({
        target: "svirt start ≤ 0.3× libvirt's",
        subject: who(r),
        measured: `${ms(x)} ms = ${ratio(x, lvStart)}`,
        limit: `≤ ${ms(0.3 * lvStart)} ms`,
        met: x <= 0.3 * lvStart,
      });
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
  out.push(...densityTargets(res));
  return out;
}
