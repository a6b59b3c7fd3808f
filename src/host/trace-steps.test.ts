import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

const MODULE = new URL('./trace-steps.js', import.meta.url).href;

/** Runs `body` in a fresh node with the module imported as t; its stdout, stderr and status. */
function run(body: string, env: NodeJS.ProcessEnv): { stdout: string; stderr: string; status: number | null } {
  const script = `const t = await import(${JSON.stringify(MODULE)});\n${body}`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env, timeout: 10_000 });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

describe('traceStep (SVIRT_TRACE_STEPS)', () => {
  const base = { PATH: process.env['PATH'] ?? '/usr/bin:/bin' };

  it('writes each step with its time to stderr and keeps it, with SVIRT_TRACE_STEPS=1', () => {
    const r = run(`t.traceStep('a:one'); t.traceStep('a:two'); console.log(JSON.stringify(t.tracedSteps()));`, {
      ...base,
      SVIRT_TRACE_STEPS: '1',
    });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0] ?? '', /^svirt: step a:one at [0-9]+\.[0-9] ms$/);
    assert.match(lines[1] ?? '', /^svirt: step a:two at [0-9]+\.[0-9] ms$/);
    const kept = JSON.parse(r.stdout) as [string, number][];
    assert.deepEqual(
      kept.map(([n]) => n),
      ['a:one', 'a:two'],
    );
    assert.ok((kept[0]?.[1] ?? 0) > 0 && (kept[1]?.[1] ?? 0) >= (kept[0]?.[1] ?? 0), 'times since the process started, in order');
  });

  it('says and keeps nothing without it (nor with another value)', () => {
    for (const value of [undefined, '0', 'yes']) {
      const env = value === undefined ? base : { ...base, SVIRT_TRACE_STEPS: value };
      const r = run(`t.traceStep('a:one'); console.log(t.tracedSteps().length);`, env);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.equal(r.stdout.trim(), '0');
    }
  });

  it('keeps only the newest steps in a long-lived process', () => {
    const r = run(
      `for (let i = 0; i < t.MAX_KEPT + 100; i++) t.traceStep('s:' + i);
       const kept = t.tracedSteps(); console.log(kept.length, kept[0][0], kept[kept.length - 1][0]);`,
      { ...base, SVIRT_TRACE_STEPS: '1' },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), '256 s:100 s:355');
  });
});
