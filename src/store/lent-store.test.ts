import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lendStore, lentStore } from './lent-store.js';
import { Store } from './store.js';

describe('lent store', () => {
  it('is the gate store for its own state dir, while the loan runs and the store is open', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'svirt-lent-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const store = Store.open(dir);
    assert.equal(lentStore(dir), undefined, 'nothing is lent outside a loan');
    await lendStore(dir, store, async () => {
      assert.equal(lentStore(dir), store);
      assert.equal(lentStore(join(dir, '.', 'x', '..')), store, 'the same dir, spelled otherwise');
      assert.equal(lentStore(join(dir, 'other')), undefined, 'another state dir opens its own');
      await Promise.resolve();
      assert.equal(lentStore(dir), store, 'still lent after an await');
    });
    assert.equal(lentStore(dir), undefined, 'the loan ends with the verb');
    await assert.rejects(
      lendStore(dir, store, async () => {
        throw new Error('verb failed');
      }),
      /verb failed/,
    );
    assert.equal(lentStore(dir), undefined, 'and ends when the verb fails');
    await lendStore(dir, store, async () => {
      store.close();
      assert.equal(lentStore(dir), undefined, 'a closed store is not lent');
    });
  });
});
