import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseOptions } from './options.js';
import { computeTargets, type BenchResults } from './report.js';
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
  });

  it('rejects unknown options and sections', () => {
    assert.throws(() => parseOptions(['--fast']), /unknown option/);
    assert.throws(() => parseOptions(['--only', 'raw,nope']), /unknown section 'nope'/);
  });
});

describe('bench targets', () => {
  it('judges a CLI start against its paired raw QEMU and node baselines', () => {
    const res: BenchResults = {
      machine: { date: '', nproc: 2, cpu: '', ramGiB: 1, kernel: '', qemu: '', node: '', kvm: '' },
      options: {},
      headlineStack: 'none',
      latency: [
        { contender: 'raw QEMU', stack: '–', start: series([30]), notes: [] },
        { contender: 'svirt library', stack: 'none', start: series([35]), pairedRaw: series([32]), notes: [] },
        {
          contender: 'svirt CLI',
          stack: 'none',
          start: series([130]),
          pairedRaw: series([30]),
          pairedNode: series([50]),
          notes: [],
        },
      ],
      steps: [],
      targets: [],
      skipped: [],
      durationS: 0,
      cleanup: [],
      load: {},
    };
    const t = computeTargets(res);
    const lib = t.find((x) => x.target.startsWith('library start'));
    const cli = t.find((x) => x.target.startsWith('CLI start'));
    assert.equal(lib?.met, true, '35 ≤ 1.2 × 32');
    assert.equal(cli?.met, false, '130 − 30 − 50 = 50 > 40');
    assert.match(cli?.measured ?? '', /raw 30\.0 \+ node 50\.0 \+ 50\.0/);
  });
});
