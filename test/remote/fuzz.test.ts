import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { scratch } from '../helpers.js';
import { VirErr } from '../../src/remote/errors.js';
import {
  KEEPALIVE_PROC_PING,
  KEEPALIVE_PROC_PONG,
  KEEPALIVE_PROGRAM,
  MessageStatus,
  MessageType,
  Proc,
  STRING_MAX,
  beginFrame,
  endFrame,
} from '../../src/remote/protocol.js';
import { XdrWriter } from '../../src/remote/xdr.js';
import { callFrame, RawClient } from './raw-client.js';
import { haveVirsh, startServer, virshOk } from './support.js';
import { seeded } from '../support/seeded.js';

const openFrame = (serial: number): Buffer =>
  callFrame(Proc.ConnectOpen, serial, (w) => w.optional('qemu:///system', (x, v) => x.string(v, STRING_MAX)).uint(0));

/** A frame whose length word says `len` (any value) followed by `body`. */
function rawFrame(len: number, body: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(len >>> 0);
  return Buffer.concat([head, body]);
}

/** Keeps the 4-byte length consistent with a (shortened or altered) frame. */
function relength(frame: Buffer): Buffer {
  const copy = Buffer.from(frame);
  copy.writeUInt32BE(copy.length, 0);
  return copy;
}

type Outcome = 'closed' | 'error-then-closed' | 'replied' | 'open';

async function oneShot(
  socket: string,
  prelude: readonly Buffer[],
  bad: Buffer,
  expectSerial?: number,
): Promise<{ outcome: Outcome; client: RawClient }> {
  const c = await RawClient.open(socket);
  for (const p of prelude) c.send(p);
  if (prelude.length > 0) await c.until(() => c.replies.length >= prelude.length, 5000);
  const before = c.replies.length;
  c.send(bad);
  const closed = await c.closedByServer(3000);
  const replied = c.replies.length > before;
  if (expectSerial !== undefined && replied)
    assert.equal(c.replies[c.replies.length - 1]?.header.serial, expectSerial, 'the error reply echoes the serial');
  c.close();
  return { outcome: closed ? (replied ? 'error-then-closed' : 'closed') : replied ? 'replied' : 'open', client: c };
}

/** Runs `jobs` with at most `width` at a time. */
async function pool<T>(jobs: readonly (() => Promise<T>)[], width: number): Promise<T[]> {
  const out: T[] = new Array<T>(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < jobs.length) {
        const i = next++;
        out[i] = await (jobs[i] as () => Promise<T>)();
      }
    }),
  );
  return out;
}

describe('svirt serve against malformed messages', { timeout: 300_000 }, () => {
  it('survives >= 1,000 malformed messages, closing only the offending clients, and answers well-formed ones after', async (t) => {
    const dir = scratch(t);
    const srv = await startServer(t, dir, 'none');
    const s = srv.socket;
    const seed = Number(process.env['SVIRT_FUZZ_SEED'] ?? Date.now() % 1_000_000);
    t.diagnostic(`fuzz seed ${seed} (replay with SVIRT_FUZZ_SEED=${seed})`);
    const rnd = seeded(seed);
    const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
    const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(0, 255)));

    // A well-behaved client that stays connected through the whole storm.
    const good = await RawClient.open(s);
    assert.equal((await good.call(openFrame(1), 1)).header.status, MessageStatus.OK);

    const jobs: (() => Promise<{ kind: string; outcome: Outcome }>)[] = [];
    const add = (kind: string, make: () => Promise<{ outcome: Outcome }>) =>
      jobs.push(async () => ({ kind, outcome: (await make()).outcome }));

    for (let i = 0; i < 200; i++) {
      // Bad length: shorter than a header, or beyond the 32 MiB limit.
      const len =
        i % 2 === 0 ? int(0, 27) : ([0x02000005, 0x7fffffff, 0xffffffff, int(0x02000005, 0xfffffffe)][i % 4] ?? 0xffffffff);
      add('bad-length', () => oneShot(s, [], rawFrame(len, bytes(int(0, 64)))));
    }
    for (let i = 0; i < 200; i++) {
      // Truncated XDR: a ConnectOpen (or, once open, a LookupByName) cut inside its arguments.
      const serial = 1000 + i;
      const opened = i % 2 === 1;
      const full = opened
        ? callFrame(Proc.DomainLookupByName, serial, (w) => w.string(`guest-${i}`, STRING_MAX))
        : openFrame(serial);
      const cut = relength(full.subarray(0, int(28 + 1, full.length - 1)));
      add('truncated', () => oneShot(s, opened ? [openFrame(1)] : [], cut, serial));
    }
    for (let i = 0; i < 200; i++) {
      // Absurd string length: far beyond REMOTE_STRING_MAX, or just longer than the message.
      const serial = 2000 + i;
      const claimed = i % 2 === 0 ? int(STRING_MAX + 1, 0xffffffff) : int(200, STRING_MAX);
      const opened = i % 3 !== 0;
      const frame = callFrame(opened ? Proc.DomainDefineXML : Proc.ConnectOpen, serial, (w) => {
        if (!opened) w.bool(true);
        w.uint(claimed).raw(bytes(int(0, 32) * 4));
      });
      add('absurd-string', () => oneShot(s, opened ? [openFrame(1)] : [], frame, serial));
    }
    for (let i = 0; i < 200; i++) {
      // Unknown program (or the right program at an unknown version).
      const prog = i % 10 === 0 ? 0x20008086 : int(0, 0xffffffff);
      const vers = i % 10 === 0 ? int(2, 1000) : 1;
      if (prog === 0x20008086 && vers === 1) continue;
      if (prog === KEEPALIVE_PROGRAM) continue;
      add('unknown-program', () => oneShot(s, [], callFrame(Proc.ConnectGetType, 3000 + i, undefined, prog, vers), 3000 + i));
    }
    for (let i = 0; i < 200; i++) {
      // Garbage: a plausible length and random bytes.
      const len = int(28, 2048);
      add('garbage', () => oneShot(s, [], rawFrame(len, bytes(len - 4))));
    }
    for (let i = 0; i < 200; i++) {
      // Mutations of a valid ConnectOpen: flipped bytes anywhere after the length word.
      const frame = Buffer.from(openFrame(4000 + i));
      for (let k = int(1, 4); k > 0; k--) frame[int(4, frame.length - 1)] = int(0, 255);
      add('mutated', () => oneShot(s, [], frame));
    }
    for (let i = 0; i < 50; i++) {
      // A message type a server never takes from a client (REPLY, STREAM, CALL_WITH_FDS, ...).
      const w = new XdrWriter();
      const type =
        [MessageType.REPLY, MessageType.MESSAGE, MessageType.STREAM, MessageType.CALL_WITH_FDS, MessageType.REPLY_WITH_FDS][
          i % 5
        ] ?? 1;
      beginFrame(w, { prog: 0x20008086, vers: 1, proc: Proc.ConnectGetType, type, serial: 5000 + i, status: i % 3 });
      add('wrong-type', () => oneShot(s, [openFrame(1)], Buffer.from(endFrame(w))));
    }

    const started = performance.now();
    const results = await pool(jobs, 32);
    const elapsed = performance.now() - started;
    const tally = new Map<string, Map<Outcome, number>>();
    for (const r of results) {
      const m = tally.get(r.kind) ?? new Map<Outcome, number>();
      m.set(r.outcome, (m.get(r.outcome) ?? 0) + 1);
      tally.set(r.kind, m);
    }
    t.diagnostic(
      `${results.length} malformed messages in ${elapsed.toFixed(0)} ms: ${[...tally].map(([k, m]) => `${k} ${[...m].map(([o, n]) => `${o}=${n}`).join('/')}`).join('; ')}`,
    );
    assert.ok(results.length >= 1000, `at least 1,000 malformed messages (sent ${results.length})`);
    const only = (kind: string, ...ok: Outcome[]) => {
      for (const [o, n] of tally.get(kind) ?? [])
        assert.ok(ok.includes(o), `${kind}: ${n} connection(s) ended '${o}', expected ${ok.join(' or ')}`);
    };
    only('bad-length', 'closed');
    only('truncated', 'error-then-closed');
    only('absurd-string', 'error-then-closed');
    only('unknown-program', 'error-then-closed');
    only('wrong-type', 'error-then-closed');

    // The same connection: invalid but well-framed calls get error replies and the connection stays.
    const same = await RawClient.open(s);
    const early = await same.call(
      callFrame(Proc.DomainLookupByName, 7, (w) => w.string('x', STRING_MAX)),
      7,
    );
    assert.equal(early.error?.code, VirErr.INTERNAL_ERROR);
    assert.match(early.error?.message ?? '', /connection not open/);
    await same.call(openFrame(8), 8);
    const burst = Buffer.concat(Array.from({ length: 300 }, (_, i) => callFrame(10_000 + i, 100 + i)));
    same.send(burst);
    assert.ok(await same.until(() => same.replies.length >= 302, 10_000), 'every pipelined call is answered');
    const unknown = same.replies.slice(2);
    assert.equal(unknown.length, 300);
    for (const r of unknown) {
      assert.equal(r.error?.code, VirErr.NO_SUPPORT);
      assert.match(r.error?.message ?? '', /^this function is not supported by the connection driver: unknown procedure: \d+$/);
    }
    assert.deepEqual(new Set(unknown.map((r) => r.header.serial)).size, 300, 'each reply carries its own serial');
    // 200 real calls in one write: past 16 in flight the server stops reading, then catches up; none is lost.
    same.replies.length = 0;
    same.send(
      Buffer.concat(
        Array.from({ length: 200 }, (_, i) => callFrame(Proc.ConnectListAllDomains, 20_000 + i, (w) => w.int(1).uint(0))),
      ),
    );
    assert.ok(
      await same.until(() => same.replies.length >= 200, 20_000),
      `all 200 pipelined calls answered (got ${same.replies.length})`,
    );
    assert.ok(same.replies.every((r) => r.header.status === MessageStatus.OK));
    assert.equal(new Set(same.replies.map((r) => r.header.serial)).size, 200);
    const type = await same.call(callFrame(Proc.ConnectGetType, 999), 999);
    assert.equal(type.header.status, MessageStatus.OK);
    assert.equal(same.closed, false);

    // Keepalive: PING gets PONG, on the same connection.
    const ping = new XdrWriter();
    beginFrame(ping, {
      prog: KEEPALIVE_PROGRAM,
      vers: 1,
      proc: KEEPALIVE_PROC_PING,
      type: MessageType.MESSAGE,
      serial: 0,
      status: MessageStatus.OK,
    });
    same.send(Buffer.from(endFrame(ping)));
    assert.ok(
      await same.until(() =>
        same.replies.some((r) => r.header.prog === KEEPALIVE_PROGRAM && r.header.proc === KEEPALIVE_PROC_PONG),
      ),
    );
    same.close();

    // The server is up, never hit an internal error, and the client that behaved was never cut.
    assert.equal(srv.child.exitCode, null, 'the server process is still running');
    assert.doesNotMatch(srv.stderr(), /internal error handling a message/);
    assert.equal(good.closed, false, 'the well-behaved client stayed connected');
    assert.equal((await good.call(callFrame(Proc.ConnectGetType, 2), 2)).header.status, MessageStatus.OK);
    good.close();
    if (haveVirsh()) assert.match(await virshOk(s, ['capabilities']), /<model>none<\/model>/);
    else t.diagnostic('virsh is not installed: the final check used the raw client only');
  });
});
