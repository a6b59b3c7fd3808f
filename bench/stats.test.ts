import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseOptions } from './options.js';
import type { BenchResults } from './bench-results.js';
import { summaryMarkdown } from './report.js';
import { computeTargets } from './targets.js';
import { series, summarize, table } from './stats.js';

describe('bench stats', () => {
  it('summarizes min / median / max with interpolated quantiles', () => {
    const s = summarize([5, 1, 3, 2, 4]);
    assert.deepEqual([s.runs, s.min, s.median, s.max, s.mean], [5, 1, 3, 5, 3]);
    assert.equal(summarize([1, 2, 3, 4]).median, 2.5);
    assert.equal(summarize([]).runs, 0);
  });

  it('prints a markdown table with pipes escaped', () => {
    assert.equal(table(['a', 'b'], [['x|y', '1']]), '| a | b |\n| --- | ---: |\n| x\\|y | 1 |');
  });
});

describe('bench options', () => {
  it('quick mode: 3 runs and 10 guests unless told otherwise', () => {
    const o = parseOptions(['--quick']);
    assert.deepEqual([o.runs, o.density, o.quick], [3, 10, true]);
    assert.equal(parseOptions(['--quick', '--density', '4']).density, 4);
    assert.equal(parseOptions([]).runs, 20);
    assert.equal(parseOptions([]).density, 200, 'issue 17: 200 guests');
  });

  it('rejects unknown options and sections', () => {
    assert.throws(() => parseOptions(['--fast']), /unknown option/);
    assert.throws(() => parseOptions(['--only', 'raw,nope']), /unknown section 'nope'/);
  });
});

/** A run's results with these latency rows (and optionally density), nothing else measured. */
function results(latency: BenchResults['latency'], extra: Partial<BenchResults> = {}): BenchResults {
  return {
    machine: { date: '2026-12-01T00:00:00Z', nproc: 2, cpu: '', ramGiB: 1, kernel: '', qemu: '', node: '', kvm: '' },
    options: { stacks: ['none', 'dac,landlock'] },
    headlineStack: 'dac,landlock',
    latency,
    steps: [],
    targets: [],
    skipped: [],
    durationS: 0,
    cleanup: [],
    load: {},
    ...extra,
  };
}

const cliRow = {
  contender: 'svirt CLI',
  stack: 'dac,landlock',
  start: series([95]),
  define: series([60]),
  listEmpty: series([66]),
  list: series([70]),
  dominfo: series([64]),
  save: series([90]),
  restore: series([120]),
  destroy: series([70]),
  destroyAfterExit: series([8]),
  pairedRaw: series([30]),
  pairedRawDestroy: series([4]),
  pairedNode: series([50]),
  notes: [],
};

describe('bench targets', () => {
  it('judges a CLI start against its paired raw QEMU and node baselines', () => {
    const res = results([
      { contender: 'raw QEMU', stack: '–', start: series([30]), notes: [] },
      { contender: 'svirt library', stack: 'none', start: series([35]), pairedRaw: series([32]), notes: [] },
      { ...cliRow, stack: 'none', start: series([130]) },
    ]);
    const t = computeTargets(res);
    const lib = t.find((x) => x.target.startsWith('library start'));
    const cli = t.find((x) => x.target.startsWith('CLI start'));
    assert.equal(lib?.met, true, '35 ≤ 1.2 × 32');
    assert.equal(cli?.met, false, '130 − 30 − 50 = 50 > 20');
    assert.match(cli?.measured ?? '', /raw 30\.0 \+ node 50\.0 \+ 50\.0/);
  });

  it("judges define, list, dominfo against node and destroy against node plus QEMU's own exit", () => {
    const t = computeTargets(results([cliRow]));
    const verdicts = Object.fromEntries(t.filter((x) => x.subject === 'svirt CLI (dac,landlock)').map((x) => [x.target, x.met]));
    assert.equal(verdicts["CLI start ≤ raw QEMU + node -e '' + 20 ms"], true, '95 − 30 − 50 = 15');
    assert.equal(verdicts["CLI define FILE ≤ node -e '' + 15 ms"], true, '60 − 50 = 10');
    assert.equal(verdicts["CLI list (empty store) ≤ node -e '' + 15 ms"], false, '66 − 50 = 16');
    assert.equal(verdicts["CLI list (1 guest running) ≤ node -e '' + 15 ms"], false, '70 − 50 = 20');
    assert.equal(verdicts["CLI dominfo NAME ≤ node -e '' + 15 ms"], true, '64 − 50 = 14');
    assert.equal(verdicts["CLI destroy ≤ QEMU's own exit + node -e '' + 15 ms"], false, '70 − 4 − 50 = 16');
    assert.equal(verdicts['destroy done ≤ 50 ms after QEMU exits (destroy)'], true);
    const virsh = t.find((x) => x.target.includes('faster than virsh'));
    assert.equal(virsh?.met, undefined, 'without libvirt: not measured');
  });

  it('compares start, destroy, save and restore with virsh when libvirt ran', () => {
    const lv = {
      contender: 'libvirt 9 (virsh)',
      stack: 'dac (libvirt-qemu)',
      start: series([300]),
      destroy: series([60]),
      save: series([100]),
      restore: series([110]),
      define: series([20]),
      notes: [],
    };
    const res = results([cliRow], { libvirt: { row: lv, firstConnectMs: 1, firstStartMs: 1, daemonRssKb: {} } });
    const vs = computeTargets(res).filter((x) => x.target.includes('faster than virsh'));
    assert.deepEqual(
      vs.map((x) => [x.target, x.met]),
      [
        ['CLI start faster than virsh start', true],
        ['CLI destroy faster than virsh destroy', false],
        ['CLI save faster than virsh save', true],
        ['CLI restore faster than virsh restore', false],
      ],
    );
  });

  it('judges cleanup after QEMU exits by itself against 20 ms', () => {
    const t = computeTargets(
      results([
        { contender: 'svirt library', stack: 'dac,landlock', exitToCleanedUp: series([19]), notes: [] },
        { contender: 'svirt library, svirt serve running', stack: 'dac,landlock', exitToCleanedUp: series([25]), notes: [] },
      ]),
    );
    const c = t.filter((x) => x.target.startsWith('cleanup done'));
    assert.deepEqual(
      c.map((x) => x.met),
      [true, false],
    );
  });

  it('judges density: svirt memory per guest and svirt list with every guest running', () => {
    const density = {
      guests: 200,
      stack: 'dac,landlock',
      started: 200,
      failures: [],
      startBatch: 50,
      startAllMs: 1,
      perGuestStart: series([1]),
      svirtPssKb: series([700, 800, 1100]),
      monitorPssKb: series([400]),
      backupPssKb: series([400]),
      monitorRssKb: series([700]),
      svirtProcsPerGuest: 2,
      helpersPerGuest: 0,
      qemuRssKb: series([1]),
      qemuPssKb: series([1]),
      svirtTotalPssMiB: 1,
      qemuTotalRssMiB: 1,
      qemuTotalPssMiB: 1,
      lists: [{ env: 'this machine', list: series([75]), pairedNode: series([50]), shown: 200 }],
      destroyAllMs: 1,
      hooksQuietMs: 1,
    };
    const t = computeTargets(results([], { density }));
    assert.equal(t.find((x) => x.target.startsWith("svirt's own memory"))?.met, true, 'median 800 kB ≤ 1024');
    assert.equal(t.find((x) => x.target.startsWith('`svirt list`'))?.met, false, '75 − 50 = 25 > 20');
    const md = summaryMarkdown({ ...results([cliRow], { density }), targets: t });
    assert.match(md, /list \(1 guest running\) \| 70\.0 \(\+20\.0\)/);
    assert.match(md, /200\/200 paused guests running/);
  });
});
