import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../store/store.js';
import { listBrief, listGuests } from './guest.js';

describe('listBrief', () => {
  // The remote listings and lookups answer from listBrief (short rows); they answered from
  // listGuests (whole records) before: the two must agree on every field those read.
  it("agrees with listGuests on every guest's name, uuid, id, state and persistence, in the same order", (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'svirt-guest-'));
    const store = Store.open(dir);
    t.after(() => {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const xml = (name: string): string => `<domain type='qemu'><name>${name}</name><memory>65536</memory></domain>`;
    const run = (uuid: string, name: string, persistent: boolean, startedAt: number, paused: boolean): void => {
      assert.ok(
        store.insertStarting({
          uuid,
          name,
          ownerPid: 1,
          ownerStart: 1,
          runtimeDir: `/run/${uuid}`,
          qmpPath: `/run/${uuid}.sock`,
          liveXml: xml(name),
          persistent,
          stack: ['dac'],
          resources: [],
          startedAt,
        }),
      );
      if (paused) store.updateRunning(uuid, { paused: true });
    };
    for (const n of ['zeta', 'alpha', 'mid', 'paused-one']) store.putDefinition({ uuid: `u-${n}`, name: n, xml: xml(n) });
    run('u-paused-one', 'paused-one', true, 5, true);
    run('u-mid', 'mid', true, 3, false);
    run('u-transient', 'transient', false, 4, false);
    store.setRunState('u-mid', 'running', null);
    const whole = listGuests(store).map((g) => ({
      name: g.name,
      uuid: g.uuid,
      id: g.record?.id,
      state: g.state,
      persistent: g.persistent,
    }));
    const brief = listBrief(store).map((b) => ({
      name: b.name,
      uuid: b.uuid,
      id: b.id,
      state: b.state,
      persistent: b.persistent,
    }));
    assert.deepEqual(brief, whole);
    assert.deepEqual(
      brief.map((b) => [b.name, b.state, b.persistent]),
      [
        ['mid', 'running', true],
        ['transient', 'running', false],
        ['paused-one', 'paused', true],
        ['alpha', 'shut off', true],
        ['zeta', 'shut off', true],
      ],
    );
  });
});
