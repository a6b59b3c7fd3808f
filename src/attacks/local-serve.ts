/**
 * Issue 12, item 8, in a few seconds: `svirt serve` started with 1,024 fds (as in the report),
 * the local user (its uid, through the 0666 read-only socket) opens 1,100 idle connections,
 * 40 partial 1 MiB frames and 8 frames declaring 32 MiB; root must still be answered at once
 * on the read-write socket, with the server's memory and fds bounded. The full reproduction,
 * with virsh and the idle timeout, is test/remote/exhaustion.test.ts.
 */
import { spawn } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { svirtMainPath } from '../host/package-root.js';
import { LEN_SIZE, MessageStatus, Proc } from '../remote/protocol.js';
import { STRING_MAX, callFrame, readHeader } from '../remote/protocol.js';
import { XdrReader, type XdrWriter } from '../remote/xdr.js';
import { asUid, broken, held, type LocalCell, type LocalWorld } from './local-world.js';

const NOFILE = 1024;
const IDLE = 1100;
const PARTIAL = 40;
const HUGE = 8;
/** Root's two calls must be answered within this while the attack holds. */
const ANSWER_MS = 1000;

/** The user's side: opens everything, says "ready", holds it all for `holdMs`, then exits. */
const HOG = `
const net = require('node:net');
const [path, idle, partial, huge, holdMs] = JSON.parse(process.argv[1]);
let closed = 0;
const socks = [];
const open = () => new Promise((resolve) => {
  const s = net.connect(path);
  socks.push(s);
  s.on('error', () => {});
  s.once('close', () => { closed++; resolve(undefined); });
  s.once('connect', () => resolve(s));
});
const len = (n) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
(async () => {
  for (let i = 0; i < huge; i++) {
    const s = await open();
    if (s) { s.write(len(32 << 20)); for (let j = 0; j < 8; j++) s.write(Buffer.alloc(1 << 20, 0x41)); }
  }
  for (let i = 0; i < partial; i++) {
    const s = await open();
    if (s) s.write(Buffer.concat([len(4 + (1 << 20)), Buffer.alloc((1 << 20) - 1, 0x42)]));
  }
  for (let i = 0; i < idle; i += 100) await Promise.all(Array.from({ length: Math.min(100, idle - i) }, open));
  await new Promise((r) => setTimeout(r, 300));
  process.stdout.write('ready ' + socks.length + ' ' + closed + '\\n');
  setTimeout(() => { process.stdout.write('closed ' + closed + '\\n'); process.exit(0); }, holdMs);
})();
`;

function rssMiB(pid: number): number {
  return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

function fds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

function frame(proc: number, serial: number, body?: (w: XdrWriter) => void): Buffer {
  return Buffer.from(callFrame(proc, serial, body));
}

/** Root's client: ConnectOpen then ConnectGetType on the read-write socket; ms taken, or why not. */
function rootCall(socket: string, timeoutMs: number): Promise<number | string> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const s = connect(socket);
    let buf = Buffer.alloc(0);
    let replies = 0;
    const finish = (v: number | string): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => finish(`no answer within ${timeoutMs} ms`), timeoutMs);
    s.on('error', (err) => finish(`connect: ${(err as NodeJS.ErrnoException).code ?? String(err)}`));
    s.on('close', () => finish("the server closed root's connection"));
    s.on('connect', () =>
      s.write(frame(Proc.ConnectOpen, 1, (w) => w.optional('qemu:///system', (x, v) => x.string(v, STRING_MAX)).uint(0))),
    );
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= LEN_SIZE && buf.length >= buf.readUInt32BE(0)) {
        const header = readHeader(new XdrReader(buf.subarray(0, buf.readUInt32BE(0)), LEN_SIZE));
        buf = buf.subarray(buf.readUInt32BE(0));
        if (header.status !== MessageStatus.OK) return finish(`call ${header.proc} failed`);
        if (++replies === 1) s.write(frame(Proc.ConnectGetType, 2));
        else return finish(performance.now() - t0);
      }
    });
  });
}

export async function serveExhaustion(w: LocalWorld): Promise<LocalCell> {
  const socket = join(w.dir, 'serve.sock');
  const argv = [svirtMainPath(), '--state-dir', w.stateDir, '--security-driver', w.stack, 'serve', '--socket', socket];
  const prlimit = spawnSync('prlimit', ['--version']).status === 0;
  const [cmd, args] = prlimit
    ? ['prlimit', [`--nofile=${NOFILE}:${NOFILE}`, '--', process.execPath, ...argv]]
    : [process.execPath, argv];
  const server = spawn(cmd, args, { env: { ...process.env, ...w.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((r) => server.once('close', () => r()));
  const user = lateChild();
  try {
    await waitFor(server, 'listening on', 30_000);
    const pid = server.pid as number;
    const base = { rss: rssMiB(pid), fds: fds(pid) };
    const before = await rootCall(socket, 5000);
    if (typeof before === 'string') throw new Error(`root was not served before the attack: ${before}`);
    const [hogCmd, hogArgs] = asUid(w.user, [
      process.execPath,
      '-e',
      HOG,
      JSON.stringify([`${socket}-ro`, IDLE, PARTIAL, HUGE, 3000]),
    ]);
    const hog = spawn(hogCmd, hogArgs, { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
    user.set(hog);
    const ready = await waitFor(hog, 'ready', 30_000);
    const during = await rootCall(socket, 5000);
    const peak = { rss: rssMiB(pid), fds: fds(pid) };
    const [, opened, closed] = /ready (\d+) (\d+)/.exec(ready) ?? [];
    const what = `${IDLE} idle + ${PARTIAL} partial 1 MiB + ${HUGE}×32 MiB frames from uid ${w.user.uid} (${closed}/${opened} closed by serve)`;
    if (typeof during === 'string') return broken(`${what}: root ${during}`);
    if (server.exitCode !== null) return broken(`${what}: serve exited`);
    const grew = peak.rss - base.rss;
    const summary = `${process.getuid?.() === 0 ? 'root' : 'the owner'} answered in ${during.toFixed(0)} ms; RSS +${grew.toFixed(0)} MiB, fds ${base.fds}→${peak.fds} (limit ${NOFILE})`;
    if (during > ANSWER_MS || grew > 100) return broken(`${what}: ${summary}`);
    return held(`${what}: ${summary}`);
  } finally {
    user.kill();
    if (server.exitCode === null) server.kill('SIGTERM');
    const timer = setTimeout(() => server.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/** The attacker's process, once spawned: killed by pid at the end if it still runs. */
function lateChild(): { set(c: ReturnType<typeof spawn>): void; kill(): void } {
  let child: ReturnType<typeof spawn> | undefined;
  return {
    set: (c) => (child = c),
    kill: () => {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** Resolves with the stdout so far once it contains `text`; rejects on exit or after the bound. */
function waitFor(child: ReturnType<typeof spawn>, text: string, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no "${text}" within ${ms} ms: ${err.trim().slice(-200)}`)), ms);
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(text)) {
        clearTimeout(timer);
        resolve(out);
      }
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (!out.includes(text)) reject(new Error(`exited (${code}) before "${text}": ${err.trim().slice(-200)}`));
    });
  });
}
