import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SCHEMA_FINGERPRINT, Store, schemaFingerprint } from './store.js';

function tempStore(t: { after: (fn: () => void) => void }): { store: Store; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'svirt-store-'));
  const store = Store.open(dir);
  t.after(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
  });
  return { store, dir };
}

describe('Store', () => {
  it('writes out the fingerprint of the schema it has', () => {
    assert.equal(
      SCHEMA_FINGERPRINT,
      schemaFingerprint(),
      `the schema changed: set SCHEMA_FINGERPRINT in store.ts to ${schemaFingerprint()} (and check native/svirt-cleanup.c against it)`,
    );
  });

  it('keeps label reservations unique per driver', (t) => {
    const { store } = tempStore(t);
    assert.equal(store.tryReserve('selinux', 's0:c1,c2', 'uuid-a'), true);
    assert.equal(store.tryReserve('selinux', 's0:c1,c2', 'uuid-b'), false);
    assert.equal(store.tryReserve('selinux', 's0:c1,c2', 'uuid-a'), true, 'reserving your own label again is fine');
    assert.equal(store.tryReserve('dac', 's0:c1,c2', 'uuid-b'), true, 'another driver has its own namespace');
    assert.equal(store.holder('selinux', 's0:c1,c2'), 'uuid-a');
    store.releaseReservations('uuid-a');
    assert.equal(store.holder('selinux', 's0:c1,c2'), undefined);
    assert.equal(store.count('dac'), 1);
  });

  it('remembers the first original and gives it back only when the last user lets go', (t) => {
    const { store } = tempStore(t);
    assert.equal(store.remember('dac', '/img', 'a', '{"uid":1}'), '{"uid":1}');
    assert.equal(store.remember('dac', '/img', 'b', '{"uid":999}'), '{"uid":1}', 'the second guest sees the first original');
    assert.equal(store.release('dac', '/img', 'a'), undefined, 'b still uses it');
    assert.equal(store.release('dac', '/img', 'a'), undefined, 'idempotent');
    assert.equal(store.release('dac', '/img', 'b'), '{"uid":1}');
    store.forget('dac', '/img');
    assert.equal(store.recall('dac', '/img'), undefined);
  });

  it('refuses a second definition with the same name and another uuid', (t) => {
    const { store } = tempStore(t);
    store.putDefinition({ uuid: 'u1', name: 'vm', xml: '<domain/>' });
    assert.throws(() => store.putDefinition({ uuid: 'u2', name: 'vm', xml: '<domain/>' }), /already exists/);
    store.putDefinition({ uuid: 'u1', name: 'vm', xml: '<domain><x/></domain>' });
    assert.equal(store.getDefinedByName('vm')?.xml, '<domain><x/></domain>');
  });

  it('lets only one of several processes reserve a label at once', async (t) => {
    const { dir } = tempStore(t);
    // Eight real processes race for the same 4 labels on one SQLite file.
    const script = `
      import('${new URL('./store.js', import.meta.url).href}').then(({ Store }) => {
        const s = Store.open(process.argv[1]);
        const won = [];
        for (let i = 0; i < 4; i++) if (s.tryReserve('dac', String(i), process.argv[2])) won.push(i);
        process.stdout.write(JSON.stringify(won));
        s.close();
      });`;
    const runs = await Promise.all(
      Array.from(
        { length: 8 },
        (_, k) =>
          new Promise<number[]>((resolve, reject) => {
            const c = spawn(process.execPath, ['--input-type=module', '-e', script, dir, `p${k}`]);
            let out = '';
            c.stdout.on('data', (d: Buffer) => (out += d.toString()));
            c.on('error', reject);
            c.on('close', () => resolve(JSON.parse(out || '[]') as number[]));
          }),
      ),
    );
    const all = runs.flat().sort();
    assert.deepEqual(all, [0, 1, 2, 3], 'each label went to exactly one process');
  });
});
