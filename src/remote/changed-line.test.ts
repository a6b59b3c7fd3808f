import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { changedLine } from '../cli/notify-serve.js';
import { Store } from '../store/store.js';
import { collectTouched, MAX_TOUCHED, type TouchedReport } from '../store/touched.js';
import { CHANGED_LINE_MAX, parseReports } from './changed-line.js';
import { ExitNotifyListener } from './exit-notify-listener.js';

/** Sends one line to the notify socket; what serve answered ('' when it closed without a word). */
function send(path: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(path, () => s.end(line));
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('close', () => resolve(got));
    s.on('error', reject);
  });
}

const UUID = (i: number): string => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
const xml = (name: string, i: number): string => `<domain type='qemu'><name>${name}</name><uuid>${UUID(i)}</uuid></domain>`;

function withStore(t: { after(fn: () => void): void }): Store {
  const dir = mkdtempSync(join(tmpdir(), 'svirt-changed-line-'));
  const store = Store.open(dir);
  t.after(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

/** The reports a line carries, as serve's listener reads them. */
function reportsOf(line: string): TouchedReport[] | undefined {
  const m = /^changed [a-z-]+ (\[.*\])\n$/.exec(line);
  return m?.[1] === undefined ? undefined : parseReports(m[1]);
}

describe('the states a CLI verb reports to serve', () => {
  it('a verb reports each guest its store writes touched, as it left it; outside a verb nothing is noted', async (t) => {
    const store = withStore(t);
    store.putDefinition({ uuid: UUID(9), name: 'before', xml: xml('before', 9) }); // no collection: not noted
    const { result, touched } = await collectTouched(async () => {
      store.putDefinition({ uuid: UUID(1), name: 'kept', xml: xml('kept', 1) });
      store.putDefinition({ uuid: UUID(2), name: 'dropped', xml: xml('dropped', 2) });
      store.undefine(UUID(2));
      return 7;
    });
    assert.equal(result, 7);
    assert.deepEqual([...(touched?.keys() ?? [])], [UUID(1), UUID(2)]);
    const line = changedLine('define', touched);
    assert.ok(Buffer.byteLength(line) <= CHANGED_LINE_MAX);
    const reports = reportsOf(line);
    assert.deepEqual(reports?.[1], { uuid: UUID(2), now: 'gone' });
    const kept = reports?.[0]?.now;
    assert.ok(kept !== undefined && kept !== 'gone', line);
    assert.deepEqual(
      { ...kept, definition: 0 },
      { name: 'kept', id: -1, state: 'shut off', persistent: true, definition: 0, pid: null },
    );
    assert.ok(kept.definition > 0, 'a fingerprint of the definition');
    // A second collection starts empty.
    assert.equal((await collectTouched(async () => 0)).touched?.size, 0);
    assert.equal(changedLine('define', (await collectTouched(async () => 0)).touched), 'changed define\n');
  });

  it('more guests than a line tells, or a store closed after the command: the verb alone', async (t) => {
    const store = withStore(t);
    const { touched } = await collectTouched(async () => {
      for (let i = 0; i <= MAX_TOUCHED; i++) store.putDefinition({ uuid: UUID(i), name: `g${i}`, xml: xml(`g${i}`, i) });
    });
    assert.equal(touched, undefined);
    assert.equal(changedLine('define', touched), 'changed define\n');
    const dir = mkdtempSync(join(tmpdir(), 'svirt-changed-line-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const other = Store.open(dir);
    const closed = await collectTouched(async () => other.putDefinition({ uuid: UUID(1), name: 'a', xml: xml('a', 1) }));
    other.close();
    assert.equal(changedLine('define', closed.touched), 'changed define\n');
    // Closed inside the command (the access gate closes the store it lent the verb): read at the close.
    const settled = await collectTouched(async () => {
      const third = Store.open(dir);
      third.putDefinition({ uuid: UUID(2), name: 'b', xml: xml('b', 2) });
      third.close();
    });
    const now = reportsOf(changedLine('define', settled.touched))?.[0]?.now;
    assert.equal(now !== undefined && now !== 'gone' ? now.name : now, 'b');
  });

  it('serve keeps only well-formed reports: any bad field refuses the whole line', () => {
    const good = { name: 'g', id: 3, state: 'paused', persistent: true, definition: 12345, pid: 4242 };
    const ok = (v: unknown): TouchedReport[] | undefined => parseReports(JSON.stringify(v));
    assert.deepEqual(ok([{ uuid: UUID(1), now: good }]), [{ uuid: UUID(1), now: good }]);
    assert.deepEqual(ok([{ uuid: UUID(1), now: 'gone' }]), [{ uuid: UUID(1), now: 'gone' }]);
    // Unknown fields are dropped, not kept.
    assert.deepEqual(ok([{ uuid: UUID(1), now: { ...good, extra: 1 }, more: 2 }]), [{ uuid: UUID(1), now: good }]);
    const bad: unknown[] = [
      [],
      {},
      [{ uuid: 'not-a-uuid', now: 'gone' }],
      [{ uuid: '0000000A-0000-4000-8000-000000000001', now: 'gone' }],
      [
        { uuid: UUID(1), now: 'gone' },
        { uuid: UUID(1), now: 'gone' },
      ],
      [{ uuid: UUID(1), now: 'went' }],
      [{ uuid: UUID(1), now: { ...good, state: 'crashed' } }],
      [{ uuid: UUID(1), now: { ...good, name: '' } }],
      [{ uuid: UUID(1), now: { ...good, name: 'x'.repeat(1025) } }],
      [{ uuid: UUID(1), now: { ...good, id: -2 } }],
      [{ uuid: UUID(1), now: { ...good, id: 1.5 } }],
      [{ uuid: UUID(1), now: { ...good, pid: 0 } }],
      [{ uuid: UUID(1), now: { ...good, pid: 5_000_000 } }],
      [{ uuid: UUID(1), now: { ...good, pid: '4242' } }],
      [{ uuid: UUID(1), now: { ...good, persistent: 1 } }],
      [{ uuid: UUID(1), now: { ...good, definition: 2 ** 32 } }],
      Array.from({ length: MAX_TOUCHED + 1 }, (_, i) => ({ uuid: UUID(i), now: 'gone' })),
    ];
    for (const b of bad) assert.equal(ok(b), undefined, JSON.stringify(b).slice(0, 200));
    assert.equal(parseReports('[{"uuid":'), undefined);
  });

  it("serve's notify socket hands a verb's reports on, and closes a line with a bad one unanswered", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'svirt-changed-line-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const calls: [string, readonly TouchedReport[] | undefined][] = [];
    const listener = await ExitNotifyListener.open({
      path: join(dir, 'notify.sock'),
      cleanup: async () => true,
      changed: async (verb, reports) => {
        calls.push([verb, reports]);
        return true;
      },
      log: () => undefined,
    });
    t.after(() => listener.close(1000));
    const now = { name: 'ünïcode guest', id: 1, state: 'running', persistent: false, definition: 0, pid: 77 };
    assert.equal(await send(listener.path, `changed start ${JSON.stringify([{ uuid: UUID(1), now }])}\n`), 'done\n');
    assert.equal(await send(listener.path, 'changed define\n'), 'done\n');
    assert.equal(await send(listener.path, `changed start [{"uuid":"${UUID(1)}","now":"went"}]\n`), '');
    assert.equal(await send(listener.path, `changed start ${JSON.stringify([{ uuid: UUID(1), now: 'gone' }])}x\n`), '');
    const long = JSON.stringify([{ uuid: UUID(1), now: { ...now, name: 'x'.repeat(CHANGED_LINE_MAX) } }]);
    assert.equal(await send(listener.path, `changed start ${long}\n`), '');
    assert.deepEqual(calls, [
      ['start', [{ uuid: UUID(1), now }]],
      ['define', undefined],
    ]);
  });
});
