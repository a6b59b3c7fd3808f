import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { scratch } from '../helpers.js';
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
import { haveVirsh, startServer, virsh } from './support.js';

const MiB = 1024 * 1024;
/** The server's file limit, as in the report: 1,100 idle connections used all 1,024. */
const NOFILE = 1024;
const IDLE_CLIENTS = 1100;
const HUGE_FRAMES = 32;
const PARTIAL_FRAMES = 100;

function ownNofile(): number {
  return Number(/^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 0);
}

const skip =
  spawnSync('prlimit', ['--version']).status !== 0
    ? 'prlimit (util-linux) is not installed'
    : ownNofile() < IDLE_CLIENTS + PARTIAL_FRAMES + HUGE_FRAMES + 200
      ? `this test process may open only ${ownNofile()} files`
      : false;

/** CAP_SYS_RESOURCE (bit 24) in this process's effective set: needed to raise a hard RLIMIT_NOFILE. */
function canRaiseHardLimits(): boolean {
  const hex = /^CapEff:\s+([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  return (BigInt(`0x${hex}`) & (1n << 24n)) !== 0n;
}

function nofileOf(pid: number): number {
  return Number(/^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))?.[1] ?? 0);
}

function rssMiB(pid: number): number {
  return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Samples the server's RSS and fd count every 50 ms; the peaks are what the test bounds. */
function sampler(pid: number): { peak: { rss: number; fds: number }; stop(): void } {
  const peak = { rss: rssMiB(pid), fds: fdCount(pid) };
  const timer = setInterval(() => {
    peak.rss = Math.max(peak.rss, rssMiB(pid));
    peak.fds = Math.max(peak.fds, fdCount(pid));
  }, 50);
  return { peak, stop: () => clearInterval(timer) };
}

/** A raw connection that records whether the server closed it, and how soon. */
interface Probe {
  readonly socket: Socket;
  closedAt?: number;
  readonly openedAt: number;
}

function probe(path: string): Promise<Probe> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const p: Probe = { socket, openedAt: performance.now() };
    socket.on('error', () => undefined); // EPIPE/ECONNRESET once the server closed it: closedAt says so
    socket.on('close', () => (p.closedAt ??= performance.now()));
    socket.once('connect', () => resolve(p));
    socket.once('close', () => resolve(p));
  });
}

/** Writes `data` unless the server closed the socket first; resolves either way. */
function writeOrClosed(p: Probe, data: Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (p.closedAt !== undefined || p.socket.destroyed) return resolve();
    p.socket.once('close', () => resolve());
    p.socket.write(data, () => resolve());
  });
}

async function waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return cond();
}

const openFrame = (serial: number): Buffer =>
  callFrame(Proc.ConnectOpen, serial, (w) => w.optional('qemu:///system', (x, v) => x.string(v, STRING_MAX)).uint(0));

/** Root's client: ConnectOpen and ConnectGetType on the read-write socket; the time both took. */
async function rootCall(socket: string): Promise<number> {
  const started = performance.now();
  const c = await RawClient.open(socket);
  try {
    assert.equal((await c.call(openFrame(1), 1, 5000)).header.status, MessageStatus.OK);
    assert.equal((await c.call(callFrame(Proc.ConnectGetType, 2), 2, 5000)).header.status, MessageStatus.OK);
  } finally {
    c.close();
  }
  return performance.now() - started;
}

function keepalivePing(): Buffer {
  const w = new XdrWriter();
  beginFrame(w, {
    prog: KEEPALIVE_PROGRAM,
    vers: 1,
    proc: KEEPALIVE_PROC_PING,
    type: MessageType.MESSAGE,
    serial: 0,
    status: MessageStatus.OK,
  });
  return Buffer.from(endFrame(w));
}

describe('svirt serve against a local user exhausting it through the read-only socket', { skip, timeout: 180_000 }, () => {
  it(`serves root at once, with RSS and fds bounded, through ${HUGE_FRAMES} frames of 32 MiB, ${PARTIAL_FRAMES} partial frames and ${IDLE_CLIENTS} idle clients`, async (t) => {
    const dir = scratch(t);
    const srv = await startServer(t, dir, 'none', [], { nofile: NOFILE });
    const all: Probe[] = [];
    t.after(() => {
      for (const p of all) p.socket.destroy();
    });
    // Started with 1,024 fds: serve raises its limit where it may (root with CAP_SYS_RESOURCE), else fits its caps to it.
    if (canRaiseHardLimits()) {
      assert.ok(nofileOf(srv.pid) >= 8192, `serve raised RLIMIT_NOFILE from ${NOFILE} (now ${nofileOf(srv.pid)})`);
    } else {
      t.diagnostic('this process lacks CAP_SYS_RESOURCE: serve cannot raise its hard file limit here, and says so');
      assert.equal(nofileOf(srv.pid), NOFILE);
      assert.match(
        srv.stderr(),
        /open-file limit 1024 \(prlimit failed: .*\): serving at most 768 clients, 128 of them read-only/,
      );
    }
    const base = { rss: rssMiB(srv.pid), fds: fdCount(srv.pid), root: await rootCall(srv.socket) };
    const sample = sampler(srv.pid);
    t.after(() => sample.stop());

    // 1. Frames that declare 32 MiB (libvirt's maximum): refused on the read-only socket at the length word.
    const huge = await Promise.all(Array.from({ length: HUGE_FRAMES }, () => probe(srv.roSocket)));
    all.push(...huge);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(32 * MiB);
    const chunk = Buffer.alloc(MiB, 0x41);
    await Promise.all(
      huge.map(async (p) => {
        await writeOrClosed(p, head);
        for (let i = 0; i < 31 && p.closedAt === undefined; i++) await writeOrClosed(p, chunk);
      }),
    );
    assert.ok(
      await waitUntil(() => huge.every((p) => p.closedAt !== undefined), 5000),
      `every client declaring a 32 MiB frame is closed (${huge.filter((p) => p.closedAt === undefined).length} still open)`,
    );
    const hugeRss = rssMiB(srv.pid);

    // 2. Partial frames within the read-only frame limit (1 MiB): held against a 16 MiB budget, the rest closed.
    const partial = await Promise.all(Array.from({ length: PARTIAL_FRAMES }, () => probe(srv.roSocket)));
    all.push(...partial);
    const oneMiB = Buffer.alloc(4);
    oneMiB.writeUInt32BE(4 + MiB);
    await Promise.all(partial.map((p) => writeOrClosed(p, Buffer.concat([oneMiB, Buffer.alloc(MiB - 1, 0x42)]))));
    await waitUntil(() => partial.filter((p) => p.closedAt === undefined).length <= 16, 5000);
    const held = partial.filter((p) => p.closedAt === undefined).length;
    assert.ok(held <= 16, `at most 16 partial 1 MiB frames are held (16 MiB read-only budget), ${held} are`);
    const partialRss = rssMiB(srv.pid);

    // 3. Idle connections, as many as the report's: the read-only ones beyond their cap are closed at once.
    const started = performance.now();
    for (let i = 0; i < IDLE_CLIENTS; i += 100) {
      all.push(...(await Promise.all(Array.from({ length: Math.min(100, IDLE_CLIENTS - i) }, () => probe(srv.roSocket)))));
    }
    const connectMs = performance.now() - started;
    await new Promise((r) => setTimeout(r, 300));
    const fdsAfter = fdCount(srv.pid);
    const roOpen = all.filter((p) => p.closedAt === undefined).length;

    // 4. Root: the read-write socket answers at once; so does the real virsh.
    const root = await rootCall(srv.socket);
    let virshMs: number | undefined;
    if (haveVirsh()) {
      const v0 = performance.now();
      const r = await virsh(srv.socket, ['list', '--all']);
      virshMs = performance.now() - v0;
      assert.equal(r.code, 0, `virsh list on the read-write socket: ${r.stderr}`);
    }
    sample.stop();
    t.diagnostic(
      `server (RLIMIT_NOFILE ${NOFILE}): RSS ${base.rss.toFixed(0)} MiB at start, ${hugeRss.toFixed(0)} after ${HUGE_FRAMES} x 32 MiB frames, ` +
        `${partialRss.toFixed(0)} after ${PARTIAL_FRAMES} partial 1 MiB frames (${held} held), peak ${sample.peak.rss.toFixed(0)}; ` +
        `fds ${base.fds} at start, ${fdsAfter} with ${IDLE_CLIENTS} idle clients more (${roOpen} read-only clients left open, ` +
        `connected in ${connectMs.toFixed(0)} ms), peak ${sample.peak.fds}; root's ConnectOpen+GetType ${base.root.toFixed(1)} ms before, ` +
        `${root.toFixed(1)} ms during${virshMs === undefined ? '' : `, virsh list ${virshMs.toFixed(0)} ms`}`,
    );
    assert.ok(root < 1000, `root was answered in ${root.toFixed(0)} ms`);
    assert.ok(sample.peak.rss < base.rss + 100, `peak RSS ${sample.peak.rss.toFixed(0)} MiB (start ${base.rss.toFixed(0)} MiB)`);
    assert.ok(roOpen <= 128, `at most 128 read-only clients stay connected, ${roOpen} do`);
    assert.ok(sample.peak.fds <= base.fds + 128 + 32, `peak fds ${sample.peak.fds} (start ${base.fds})`);
    assert.match(srv.stderr(), /refusing new clients: 128 read-only clients connected \(at most 128\)/);
    assert.match(srv.stderr(), /refused: the server holds .* of requests of read-only clients, its limit is 16 MiB/);
    assert.match(
      srv.stderr(),
      /\[ro\]: malformed message: message length 33554432 is outside 28\.\.1048580 \(the read-only socket takes frames up to 1 MiB\)/,
    );
    assert.equal(srv.child.exitCode, null, 'the server is still running');
  });

  it('closes clients that send no message for --idle-timeout; keepalives keep one, and root’s open connection stays', async (t) => {
    const dir = scratch(t);
    const srv = await startServer(t, dir, 'none', ['--idle-timeout', '1']);
    const silentRo = await probe(srv.roSocket);
    const trickle = await probe(srv.roSocket);
    const silentRw = await probe(srv.socket);
    const pinging = await RawClient.open(srv.roSocket);
    const root = await RawClient.open(srv.socket);
    t.after(() => {
      for (const s of [silentRo.socket, trickle.socket, silentRw.socket]) s.destroy();
      pinging.close();
      root.close();
    });
    assert.equal((await root.call(openFrame(1), 1)).header.status, MessageStatus.OK);
    // A frame sent one byte at a time is not a message: the slot it holds is given back.
    const frame = openFrame(1);
    let sent = 0;
    const drip = setInterval(() => {
      if (sent < frame.length && trickle.closedAt === undefined) trickle.socket.write(frame.subarray(sent, ++sent));
    }, 150);
    const ping = setInterval(() => pinging.send(keepalivePing()), 300);
    try {
      await new Promise((r) => setTimeout(r, 3500));
    } finally {
      clearInterval(drip);
      clearInterval(ping);
    }
    assert.notEqual(silentRo.closedAt, undefined, 'a silent read-only client is closed');
    assert.ok((silentRo.closedAt ?? 0) - silentRo.openedAt < 3000, 'within the timeout and a sweep');
    assert.notEqual(trickle.closedAt, undefined, 'a client trickling one frame is closed');
    assert.notEqual(silentRw.closedAt, undefined, 'a read-write client that never opened is closed');
    assert.equal(pinging.closed, false, 'a client sending keepalives stays');
    assert.ok(pinging.replies.some((r) => r.header.prog === KEEPALIVE_PROGRAM && r.header.proc === KEEPALIVE_PROC_PONG));
    assert.equal(root.closed, false, "root's open connection stays, silent as it is");
    assert.equal((await root.call(callFrame(Proc.ConnectGetType, 2), 2)).header.status, MessageStatus.OK);
    assert.match(srv.stderr(), /\[ro\]: no message for \d+ s; closing the connection/);
  });
});
