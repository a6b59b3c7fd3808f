import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SvirtError } from '../errors.js';
import {
  DEFINED_NAMES_SQL,
  RUNNING_CHECKS_SQL,
  RUNNING_LISTED_SQL,
  SCHEMA_FINGERPRINT,
  Store,
  WAL_AUTOCHECKPOINT_PAGES,
  schemaFingerprint,
} from './store.js';

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

  it('refuses to remember an original inside a transaction, where it would reach the disk only after the label', (t) => {
    const { store } = tempStore(t);
    assert.throws(
      () => store.tx(() => store.remember('dac', '/img', 'a', '{"uid":1}')),
      (e: unknown) => e instanceof SvirtError && e.code === 'SVIRT_ERR_INTERNAL' && /inside a transaction/.test(e.message),
    );
    assert.throws(() => store.tx(() => store.rememberUnsynced('dac', '/img', 'a', '{"uid":1}')), /inside a transaction/);
    assert.equal(store.recall('dac', '/img'), undefined, 'nothing was kept');
  });

  it("notes an original without its sync, and says whether it added the guest's use", (t) => {
    const { store } = tempStore(t);
    assert.equal(store.rememberUnsynced('dac', '/img', 'a', '{"uid":1}'), true);
    assert.equal(store.rememberUnsynced('dac', '/img', 'a', '{"uid":2}'), false, 'a repeat adds nothing');
    assert.equal(store.rememberUnsynced('dac', '/img', 'b', '{"uid":3}'), true, "b's use is new; the original stays a's");
    store.syncRemembered();
    store.syncRemembered(); // nothing changed since: no sync, no error
    assert.equal(store.remember('dac', '/img', 'a', '{"uid":4}'), '{"uid":1}', 'the noted original is the one in force');
    assert.deepEqual(store.recall('dac', '/img'), { original: '{"uid":1}', users: ['a', 'b'] });
  });

  it('refuses a second definition with the same name and another uuid', (t) => {
    const { store } = tempStore(t);
    store.putDefinition({ uuid: 'u1', name: 'vm', xml: '<domain/>' });
    assert.throws(() => store.putDefinition({ uuid: 'u2', name: 'vm', xml: '<domain/>' }), /already exists/);
    store.putDefinition({ uuid: 'u1', name: 'vm', xml: '<domain><x/></domain>' });
    assert.equal(store.getDefinedByName('vm')?.xml, '<domain><x/></domain>');
  });

  it("reads reconcile's checks and list's rows short, each from an index alone", (t) => {
    const { store } = tempStore(t);
    const running = (uuid: string, name: string, startedAt: number): void => {
      assert.ok(
        store.insertStarting({
          uuid,
          name,
          ownerPid: 10,
          ownerStart: 20,
          runtimeDir: `/run/${uuid}`,
          qmpPath: `/run/${uuid}.sock`,
          liveXml: `<domain><name>${name}</name>${'<x/>'.repeat(500)}</domain>`,
          persistent: true,
          stack: ['dac', 'landlock'],
          resources: [],
          startedAt,
        }),
      );
    };
    running('u-b', 'b', 2);
    running('u-a', 'a', 1);
    store.putDefinition({ uuid: 'u-c', name: 'c', xml: '<domain/>' });
    store.tryReserve('dac', '+1000:+1000', 'u-a');
    assert.ok(store.setRunState('u-a', 'running', null));
    assert.ok(store.beginOp('u-a', { op: 'eject', target: 'sda' }, { pid: 30, startTime: 40 }));
    const checks = new Map(store.runningChecks().map((c) => [c.uuid, c]));
    assert.deepEqual(checks.get('u-a'), {
      uuid: 'u-a',
      state: 'running',
      pid: null,
      pidStart: null,
      ownerPid: 30,
      ownerStart: 40,
      stack: '["dac","landlock"]',
      pending: 1,
      reserved: 1,
    });
    assert.deepEqual(
      {
        state: checks.get('u-b')?.state,
        ownerPid: checks.get('u-b')?.ownerPid,
        pending: checks.get('u-b')?.pending,
        reserved: checks.get('u-b')?.reserved,
      },
      { state: 'starting', ownerPid: 10, pending: 0, reserved: 0 },
    );
    // listRunning()'s order (started_at, then name), and only what `list` shows
    assert.deepEqual(
      store.listRunningListed().map((r) => [r.name, r.uuid, r.persistent, r.paused]),
      [
        ['a', 'u-a', 1, 0],
        ['b', 'u-b', 1, 0],
      ],
    );
    assert.deepEqual(
      store.listRunningListed().map((r) => r.id),
      store.listRunning().map((r) => r.id),
    );
    assert.deepEqual(store.listDefinedNames(), [{ uuid: 'u-c', name: 'c' }]);
    assert.deepEqual(store.reservedNotRunning(), []);
    store.tryReserve('dac', '+1001:+1001', 'u-gone');
    assert.deepEqual(store.reservedNotRunning(), ['u-gone']);
    // A column added to one of these queries and not to its index would read every row's XML again.
    const plan = (sql: string): string =>
      (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[]).map((r) => r.detail).join('; ');
    assert.match(plan(RUNNING_CHECKS_SQL), /SCAN running USING COVERING INDEX running_checks/);
    assert.match(plan(RUNNING_LISTED_SQL), /SCAN running USING COVERING INDEX running_listed/);
    assert.match(plan(DEFINED_NAMES_SQL), /SCAN domains USING COVERING INDEX domains_names/);
  });

  it('leaves the WAL at its close, and bounds it by checkpoints at commits', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'svirt-store-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const wal = join(dir, 'svirt.db-wal');
    const first = Store.open(dir);
    first.tryReserve('dac', 'kept', 'uuid-a');
    first.close();
    // SQLite's default would have copied the WAL into svirt.db and removed it (native/store-ext.c)
    assert.ok(lstatSync(wal).size > 32, 'the WAL is still there, with frames');
    const second = Store.open(dir);
    assert.equal(second.holder('dac', 'kept'), 'uuid-a', 'a new connection reads what the WAL holds');
    // Frames in the WAL that no checkpoint has copied yet: [busy, frames, copied] from a
    // checkpoint that never waits and copies nothing while the check itself holds no lock.
    const framesNow = (): number =>
      (second.db.prepare('PRAGMA wal_checkpoint(NOOP)').raw().get() as number[] | undefined)?.[1] ?? -1;
    let most = 0;
    for (let i = 0; i < 400; i++) {
      second.tryReserve('dac', `l${i}`, `uuid-${i}`);
      most = Math.max(most, framesNow());
    }
    assert.ok(most > 0, `the WAL held frames (${most})`);
    assert.ok(most <= WAL_AUTOCHECKPOINT_PAGES + 8, `at most ${WAL_AUTOCHECKPOINT_PAGES} pages and one commit's: ${most}`);
    second.close();
    assert.ok(existsSync(wal));
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
