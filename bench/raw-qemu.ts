import { closeSync, constants, existsSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { DomainDef } from '../src/domain/domain-def.js';
import { parseDomainXml } from '../src/domain/index.js';
import { buildArgv, diskKey, type FdSetEntry } from '../src/qemu/argv.js';
import { QmpClient } from '../src/qemu/qmp-client.js';
import { identity, sleep, type Janitor } from './proc.js';
import { spawnRaw, type RawChild } from './raw-child.js';
import { QEMU, guestSpec, guestXml, makeImage, type GuestSpec } from './guest.js';
import type { StepTimes } from './start-steps.js';
import { series } from './stats.js';
import type { LatencyRow, RunContext } from './svirt-runs.js';

/** A QEMU started directly by the bench: no store, no labels, no monitor, no launcher. */
export interface RawGuest {
  readonly child: RawChild;
  readonly pid: number;
  readonly startMs: number;
  /** From spawn until the QMP socket accepted the connection that then succeeded. */
  readonly socketMs: number;
  readonly runtimeDir: string;
}

/** QEMU's argv exactly as svirt builds it (same -sandbox, same -blockdev over an inherited fd), paused. */
export function rawArgv(def: DomainDef, qmpPath: string): string[] {
  const disk = def.disks[0];
  const fdsets = new Map<string, FdSetEntry>();
  if (disk?.path !== undefined) fdsets.set(diskKey(disk, 0), { fd: 4, set: 1, path: disk.path, readonly: false });
  // svirt binds the monitor socket itself and passes its fd; the raw baseline lets QEMU bind it.
  return buildArgv(def, { emulator: QEMU, accel: 'tcg', qmpFd: 99, paused: true, fdsets }).map((a) =>
    a === 'socket,id=qmp,fd=99,server=on,wait=off' ? `socket,id=qmp,path=${qmpPath},server=on,wait=off` : a,
  );
}

/**
 * The floor: spawn QEMU with the image as fd 4 and wait until QMP answers
 * `qmp_capabilities`. Polls for the socket every millisecond (svirt's launcher: 5 ms).
 */
export async function rawStart(g: GuestSpec, runtimeDir: string, janitor: Janitor): Promise<RawGuest> {
  const def = parseDomainXml(guestXml(g));
  rmSync(runtimeDir, { recursive: true, force: true });
  mkdirSync(runtimeDir, { mode: 0o700 });
  const qmpPath = join(runtimeDir, 'qmp.sock');
  const argv = rawArgv(def, qmpPath);
  const t0 = performance.now();
  const image = openSync(g.image, constants.O_RDWR | constants.O_NOFOLLOW);
  const log = openSync(join(runtimeDir, 'qemu.log'), 'w', 0o600);
  let child: RawChild;
  try {
    child = spawnRaw(argv[0] as string, argv.slice(1), ['ignore', 'ignore', log, 'ignore', image]);
  } finally {
    closeSync(image);
    closeSync(log);
  }
  const pid = child.pid;
  janitor.track(identity(pid));
  const t = await awaitQmp(child, qmpPath, t0, runtimeDir);
  return { child, pid, ...t, runtimeDir };
}

/**
 * Polls every millisecond for QEMU's QMP socket (svirt's launcher: 5 ms) until
 * `qmp_capabilities` succeeds; times are from t0. Fails when QEMU exits first.
 */
export async function awaitQmp(
  child: RawChild,
  qmpPath: string,
  t0: number,
  runtimeDir: string,
): Promise<{ startMs: number; socketMs: number }> {
  for (;;) {
    const exited = child.status();
    if (exited !== undefined) throw new Error(`raw QEMU ${exited} during start (see ${runtimeDir}/qemu.log)`);
    if (existsSync(qmpPath)) {
      const tc = performance.now();
      try {
        const q = await QmpClient.connect(qmpPath, 10_000);
        const startMs = performance.now() - t0;
        q.close();
        return { startMs, socketMs: tc - t0 };
      } catch {
        // listening socket not ready yet: look again
      }
    }
    if (performance.now() - t0 > 30_000) throw new Error('raw QEMU did not open its QMP socket in 30 s');
    await sleep(1);
  }
}

/** SIGTERM (as `destroy` sends first) until the exit event: QEMU's own exit time. */
export async function rawDestroy(g: RawGuest, janitor: Janitor): Promise<number> {
  const t0 = performance.now();
  g.child.kill('SIGTERM');
  await g.child.gone;
  const ms = performance.now() - t0;
  janitor.untrack(g.pid);
  rmSync(g.runtimeDir, { recursive: true, force: true });
  return ms;
}

/** Start and destroy of raw QEMU, `runs` times after one warm-up; also the split of its start. */
export async function rawRuns(ctx: RunContext): Promise<{ row: LatencyRow; steps: StepTimes }> {
  const dir = join(ctx.work, 'raw');
  mkdirSync(join(ctx.work, 'images'), { recursive: true, mode: 0o711 });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const g = guestSpec('bench-raw', makeImage(join(ctx.work, 'images', 'raw.img')));
  const start: number[] = [];
  const destroy: number[] = [];
  const sock: number[] = [];
  const qmp: number[] = [];
  for (let i = 0; i <= ctx.runs; i++) {
    const r = await rawStart(g, join(dir, 'run'), ctx.janitor);
    const d = await rawDestroy(r, ctx.janitor);
    if (i === 0) continue;
    start.push(r.startMs);
    destroy.push(d);
    sock.push(r.socketMs);
    qmp.push(r.startMs - r.socketMs);
  }
  return {
    row: { contender: 'raw QEMU', stack: '–', start: series(start), destroy: series(destroy), notes: [] },
    steps: {
      contender: 'raw QEMU',
      steps: [
        { step: 'spawn QEMU, until the QMP socket accepts', ms: series(sock) },
        { step: 'QMP greeting + qmp_capabilities', ms: series(qmp) },
        { step: 'total', ms: series(start) },
      ],
    },
  };
}

/** One paired raw QEMU run: its start (until QMP answers) and its destroy (SIGTERM until exit). */
export interface RawPair {
  readonly start: number;
  readonly destroy: number;
}

/**
 * A raw QEMU start and destroy to pair with each measured run (same time window, same
 * load), so a ratio to raw QEMU does not drift with whatever else shares the machine.
 */
export function rawPairer(ctx: RunContext, tag: string): () => Promise<RawPair> {
  const dir = join(ctx.work, `raw-${tag}`);
  mkdirSync(join(ctx.work, 'images'), { recursive: true, mode: 0o711 });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const g = guestSpec(`bench-raw-${tag}`, makeImage(join(ctx.work, 'images', `raw-${tag}.img`)));
  return async () => {
    const r = await rawStart(g, join(dir, 'run'), ctx.janitor);
    const destroy = await rawDestroy(r, ctx.janitor);
    return { start: r.startMs, destroy };
  };
}
