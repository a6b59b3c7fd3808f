/**
 * The networking rows of the attack matrix, run where they can all run: `svirt demo` inside
 * a network namespace the test makes (a veth with a default route, so B's passt has an
 * interface; `tap-create` runs only outside the host's namespace). Guest A's monitor tries
 * to make a host tap and A's confinement tries to signal B's passt: both denied under the
 * default stack and under each of its drivers alone, both done under none (the row can fail).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { SVIRT_BIN, qemuAsRootSkip } from '../helpers.js';
import { netns, netnsSkip, nsRun, vethPair } from '../support/netns.js';

const skip = qemuAsRootSkip() || netnsSkip();

interface Row {
  id: string;
  cells: Record<string, { result: string; detail: string }>;
}

function demoIn(ns: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'ip',
      ['netns', 'exec', ns, process.execPath, SVIRT_BIN, '--json', 'demo', '--stacks', 'none;dac;landlock;dac,landlock'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

describe('attack matrix: networking rows (in a test-made namespace)', { skip }, () => {
  it(
    "denies A a host tap and a signal to B's passt under every confining stack, allows both under none",
    { timeout: 600_000 },
    async (t) => {
      const a = netns(t);
      const b = netns(t);
      vethPair({ ns: a, name: 'vout', addr: '10.98.0.1/24' }, { ns: b, name: 'vin', addr: '10.98.0.2/24' });
      nsRun(a, ['ip', 'route', 'add', 'default', 'via', '10.98.0.2']);
      const r = await demoIn(a);
      assert.equal(r.code, 0, r.stderr.slice(-2000));
      const m = JSON.parse(r.stdout) as { rows: Row[] };
      for (const id of ['tap-create', 'passt-b']) {
        const row = m.rows.find((x) => x.id === id);
        assert.ok(row, `row ${id} ran: ${m.rows.map((x) => x.id).join(',')}`);
        assert.equal(row.cells['none']?.result, 'allowed', `${id} under none: ${row.cells['none']?.detail ?? ''}`);
        for (const stack of ['dac', 'landlock', 'dac,landlock']) {
          assert.equal(row.cells[stack]?.result, 'denied', `${id} under ${stack}: ${row.cells[stack]?.detail ?? ''}`);
        }
      }
      assert.doesNotMatch(nsRun(a, ['ip', '-o', 'link']), /atk[0-9a-f]{8}/, 'the tap made under none is gone');
    },
  );
});
