import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, read, writeSync } from 'node:fs';
import { LineChannel } from './fd-channel.js';
import { socketpair } from './native.js';

interface Seen {
  readonly lines: string[];
  readonly ends: (Error | undefined)[];
}

/**
 * A channel on one end of a socketpair; the other end is the test's. The channel is closed
 * after the test even when an assertion failed first: its watch would keep the file's process,
 * and the whole run, waiting (CI ci25b).
 */
function pair(t: TestContext, maxLine = 1024): { channel: LineChannel; peer: number; seen: Seen; ended: Promise<void> } {
  const [ours, peer] = socketpair();
  const seen: Seen = { lines: [], ends: [] };
  let ended: () => void = () => undefined;
  const channel = new LineChannel(ours, {
    onLine: (l) => seen.lines.push(l),
    onEnd: (e) => {
      seen.ends.push(e);
      ended();
    },
    maxLine,
    tooLong: () => new Error(`a line longer than ${maxLine} bytes`),
  });
  t.after(() => channel.close()); // a second close() does nothing
  return { channel, peer, seen, ended: new Promise((r) => (ended = r)) };
}

const tick = (ms = 20): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Reads `n` bytes from fd on the thread pool. */
async function readBytes(fd: number, n: number): Promise<Buffer> {
  const out = Buffer.alloc(n);
  for (let got = 0; got < n;) {
    const k = await new Promise<number>((res, rej) => read(fd, out, got, n - got, null, (e, b) => (e ? rej(e) : res(b))));
    if (k === 0) throw new Error(`EOF after ${got} of ${n} bytes`);
    got += k;
  }
  return out;
}

describe('LineChannel (native/fd-watch.c)', () => {
  it('splits lines across reads and keeps a UTF-8 character split between two reads whole', async (t) => {
    const { channel, peer, seen, ended } = pair(t);
    const text = Buffer.from('first\nsecond ü€\nthird');
    const cut = text.indexOf(Buffer.from('€')) + 1; // inside the three bytes of €
    writeSync(peer, text.subarray(0, cut));
    // The first line comes when the loop polls the fd; a loaded machine may run an earlier timer
    // first (CI ci25b), so it is waited for (5 s at most), then the partial one is given a chance.
    for (let waited = 0; seen.lines.length === 0 && waited < 5000; waited += 5) await tick(5);
    await tick();
    assert.deepEqual(seen.lines, ['first'], 'a line is given only once it is complete');
    writeSync(peer, text.subarray(cut));
    writeSync(peer, '\n');
    closeSync(peer);
    await ended;
    assert.deepEqual(seen.lines, ['first', 'second ü€', 'third']);
    assert.deepEqual(seen.ends, [undefined], 'EOF ends it once, without an error');
    channel.close();
  });

  it('gives back exactly the lines written, however the bytes are cut (300 random cuts)', { timeout: 30_000 }, async (t) => {
    const { channel, peer, seen, ended } = pair(t, 4096);
    const alphabet = ['a', 'Z', '0', ' ', '{', '"', 'é', 'ß', '€', '中', '😀', '\u0000', '\t'];
    let seed = 19;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const lines = Array.from({ length: 300 }, () =>
      Array.from({ length: rand(40) }, () => alphabet[rand(alphabet.length)]).join(''),
    );
    const bytes = Buffer.from(lines.map((l) => `${l}\n`).join(''));
    for (let at = 0; at < bytes.length;) {
      const n = 1 + rand(17); // cuts inside multi-byte characters too
      writeSync(peer, bytes.subarray(at, at + n));
      at += n;
      if (rand(8) === 0) await tick(1); // some cuts reach the channel as reads of their own
    }
    closeSync(peer);
    await ended;
    assert.deepEqual(seen.lines, lines);
    assert.deepEqual(seen.ends, [undefined]);
    channel.close();
  });

  it('ends with tooLong() at a line past the limit, and reads no further', async (t) => {
    const { channel, peer, seen, ended } = pair(t, 1000);
    writeSync(peer, 'ok\n');
    for (let i = 0; i < 5; i++) writeSync(peer, 'x'.repeat(300)); // 1500 bytes, no newline
    await ended;
    writeSync(peer, '\nlater\n');
    await tick();
    assert.deepEqual(seen.lines, ['ok']);
    assert.equal(seen.ends.length, 1);
    assert.match(String(seen.ends[0]?.message), /longer than 1000 bytes/);
    channel.close();
    closeSync(peer);
  });

  it('sends what the socket cannot take at once later, every byte in order', { timeout: 30_000 }, async (t) => {
    const { channel, peer } = pair(t);
    const big = Buffer.alloc(4 * 1024 * 1024); // far past a socketpair's buffer (about 200 kB)
    for (let i = 0; i < big.length; i++) big[i] = i % 251;
    channel.write(big);
    channel.write('tail\n'); // queued behind the rest, not ahead of it
    const got = await readBytes(peer, big.length + 5);
    assert.ok(got.subarray(0, big.length).equals(big));
    assert.equal(got.subarray(big.length).toString(), 'tail\n');
    channel.close();
    closeSync(peer);
  });

  it('refuses to queue more than 16 MiB for a peer that does not read', (t) => {
    const { channel, peer } = pair(t);
    channel.write(Buffer.alloc(15 * 1024 * 1024));
    assert.throws(() => channel.write(Buffer.alloc(2 * 1024 * 1024)), { code: 'ENOBUFS' });
    channel.close();
    closeSync(peer);
  });

  it('reports a write to a peer gone as EPIPE, without a signal', async (t) => {
    const { channel, peer, seen, ended } = pair(t);
    closeSync(peer);
    await ended; // EOF first
    assert.deepEqual(seen.ends, [undefined]);
    assert.throws(() => channel.write('x\n'), { code: 'EBADF' }, 'an ended channel takes no more');
    channel.close();
    const [a, b] = socketpair();
    const c2 = new LineChannel(a, { onLine: () => undefined, onEnd: () => undefined, maxLine: 10, tooLong: () => new Error('') });
    closeSync(b);
    assert.throws(() => c2.write('x\n'), { code: 'EPIPE' }, 'the send fails now: no SIGPIPE kills the process');
    c2.close();
  });

  it('calls nothing after close(), closes the fd once, and lets the process exit', async (t) => {
    const { channel, peer, seen } = pair(t);
    const fd = channel.fd;
    writeSync(peer, 'unread\n'); // readable, but closed before the loop looks
    channel.close();
    channel.close();
    assert.equal(channel.fd, -1);
    assert.throws(() => fstatSync(fd), { code: 'EBADF' });
    await tick();
    assert.deepEqual(seen, { lines: [], ends: [] });
    closeSync(peer);
    // A process whose only channel is closed exits at once; one left open waits for its peer.
    const script = (close: boolean): string => `
      const { LineChannel } = await import(${JSON.stringify(new URL('./fd-channel.js', import.meta.url).href)});
      const { socketpair } = await import(${JSON.stringify(new URL('./native.js', import.meta.url).href)});
      const [a] = socketpair();
      const c = new LineChannel(a, { onLine() {}, onEnd() {}, maxLine: 10, tooLong: () => new Error('') });
      ${close ? 'c.close();' : ''}`;
    const closed = spawnSync(process.execPath, ['--input-type=module', '-e', script(true)], { timeout: 10_000 });
    assert.equal(closed.status, 0, String(closed.stderr));
    const open = spawnSync(process.execPath, ['--input-type=module', '-e', script(false)], { timeout: 1_000 });
    assert.equal(open.signal, 'SIGTERM', 'an open channel keeps the event loop alive, as a socket does');
  });

  it('gives an exception its listener throws to the process, as an event listener would', () => {
    const script = `
      const { LineChannel } = await import(${JSON.stringify(new URL('./fd-channel.js', import.meta.url).href)});
      const { socketpair } = await import(${JSON.stringify(new URL('./native.js', import.meta.url).href)});
      const { writeSync } = await import('node:fs');
      const [a, b] = socketpair();
      process.on('uncaughtException', (e) => { console.log('caught', e.message); process.exit(0); });
      new LineChannel(a, { onLine(l) { throw new Error('boom ' + l); }, onEnd() {}, maxLine: 10, tooLong: () => new Error('') });
      writeSync(b, 'x\\n');`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'caught boom x');
  });
});
