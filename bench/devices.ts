/**
 * The `devices` section (issue 13): a start with a NIC (passt), a VNC display on a unix
 * socket and a guest-agent channel, through the library, paired run by run with a raw start
 * of the same devices: passt and QEMU (with the argv svirt builds) spawned side by side over
 * a socketpair, done when QMP answers and passt has sandboxed itself, as svirt waits for both.
 */
import { closeSync, constants, existsSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { DomainDef } from '../src/domain/domain-def.js';
import { parseDomainXml } from '../src/domain/index.js';
import { isAlive, processStatus, type ProcessIdentity } from '../src/host/proc.js';
import { socketpair } from '../src/host/native.js';
import { channelSocketPath } from '../src/lifecycle/console-devices.js';
import { PASST, passtArgv, PASST_FD } from '../src/network/passt.js';
import { buildArgv, diskKey, type FdSetEntry } from '../src/qemu/argv.js';
import { chardevSlots } from '../src/qemu/chardev-argv.js';
import { effectiveVideos } from '../src/qemu/display-argv.js';
import { QEMU, guestXml, type GuestSpec } from './guest.js';
import { identity, waitUntil, type Janitor } from './proc.js';
import { spawnRaw, type RawChild } from './raw-child.js';
import { awaitQmp } from './raw-qemu.js';
import { series, type Series } from './stats.js';
import { closeLater, prepareGuest, qemuId, settle, slug, track, type RunContext } from './svirt-runs.js';
import { openHypervisor } from './svirt-setup.js';

export interface DevicesResult {
  readonly stack: string;
  /** `Hypervisor.start(name, {paused: true})` of the guest with the three devices. */
  readonly svirtStart: Series;
  readonly svirtDestroy: Series;
  /** passt and QEMU spawned side by side until both are up (the whole raw start). */
  readonly rawStart: Series;
  /** Of rawStart: passt spawned until it had sandboxed itself. */
  readonly rawPasst: Series;
  /** Of rawStart: QEMU spawned until QMP answered. */
  readonly rawQemu: Series;
  /** SIGTERM to QEMU until QEMU and passt are both gone. */
  readonly rawDestroy: Series;
  readonly devices: string;
}

export const DEVICES = `<interface type='user'><backend type='passt'/><model type='virtio'/></interface>
    <graphics type='vnc'><listen type='socket'/></graphics>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>`;

/** bench/guest.ts's guest plus a passt NIC, a VNC socket display and the guest-agent channel. */
export function devicesXml(g: GuestSpec): string {
  return guestXml(g).replace('  </devices>', `    ${DEVICES}\n  </devices>`);
}

/** Fixed fds of the raw QEMU: the image (as rawArgv), QEMU's end of the passt socketpair. */
const IMAGE_FD = 4;
const NIC_FD = 5;
/** Placeholders in the argv, replaced by the paths QEMU binds itself in the raw start. */
const QMP_FD = 99;
const CHANNEL_FD = 98;

/**
 * The live definition as svirt places it (placeDevices, assignMacs, the NIC alias), with
 * paths in the raw run's dir, and QEMU's argv from buildArgv: the NIC on NIC_FD, the VNC
 * socket and the channel socket bound by QEMU at their paths (svirt binds the channel and
 * the monitor itself and passes fds), the monitor at a path.
 */
export function rawDevicesArgv(def: DomainDef, runtimeDir: string): { argv: string[]; qmpPath: string } {
  const qmpPath = join(runtimeDir, 'qmp.sock');
  const live: DomainDef = {
    ...def,
    interfaces: def.interfaces.map((n, i) => ({
      ...n,
      alias: n.alias ?? `net${i}`,
      mac: n.mac ?? `52:54:00:be:00:${i.toString(16).padStart(2, '0')}`,
    })),
    chardevs: def.chardevs.map((c) => {
      const path = channelSocketPath(runtimeDir, c);
      return path === undefined ? c : { ...c, path };
    }),
    ...(def.graphics
      ? { graphics: def.graphics.map((g) => ({ ...g, listen: { type: 'socket', socket: join(runtimeDir, `${g.type}.sock`) } })) }
      : {}),
    videos: effectiveVideos(def),
  };
  const disk = live.disks[0];
  const fdsets = new Map<string, FdSetEntry>();
  if (disk?.path !== undefined) fdsets.set(diskKey(disk, 0), { fd: IMAGE_FD, set: 1, path: disk.path, readonly: false });
  const channels = chardevSlots(live).filter((s) => s.chardev.type === 'unix');
  if (channels.length !== 1) throw new Error(`the devices guest should have one unix channel, not ${channels.length}`);
  const channel = channels[0] as (typeof channels)[number];
  const chanPath = channel.chardev.path as string;
  const argv = buildArgv(live, {
    emulator: QEMU,
    accel: 'tcg',
    qmpFd: QMP_FD,
    paused: true,
    fdsets,
    chardevFds: new Map([[channel.index, { fd: CHANNEL_FD, set: 0, path: chanPath, readonly: false }]]),
    nics: new Map([[0, { kind: 'stream', fd: NIC_FD }]]),
  }).map((a) => {
    if (a === `socket,id=qmp,fd=${QMP_FD},server=on,wait=off`) return `socket,id=qmp,path=${qmpPath},server=on,wait=off`;
    if (a === `socket,id=${channel.id},fd=${CHANNEL_FD},server=on,wait=off`)
      return `socket,id=${channel.id},path=${chanPath},server=on,wait=off`;
    return a;
  });
  for (const placeholder of [`fd=${QMP_FD}`, `fd=${CHANNEL_FD}`])
    if (argv.some((a) => a.includes(placeholder)))
      throw new Error(`raw devices argv still has ${placeholder}: ${argv.join(' ')}`);
  return { argv, qmpPath };
}

interface RawDevicesGuest {
  readonly qemu: RawChild;
  readonly qemuPid: number;
  readonly passt: RawChild;
  readonly passtId: ProcessIdentity;
  readonly startMs: number;
  readonly passtMs: number;
  readonly qemuMs: number;
  readonly runtimeDir: string;
}

/**
 * QEMU and then passt spawned side by side over their socketpair (QEMU needs no ready passt),
 * the start done when QMP answers and passt has sandboxed itself (seccomp on), as svirt does.
 */
async function rawDevicesStart(g: GuestSpec, runtimeDir: string, janitor: Janitor): Promise<RawDevicesGuest> {
  const def = parseDomainXml(devicesXml(g));
  rmSync(runtimeDir, { recursive: true, force: true });
  mkdirSync(runtimeDir, { mode: 0o700 });
  const { argv, qmpPath } = rawDevicesArgv(def, runtimeDir);
  const pArgv = passtArgv(def.interfaces[0] as DomainDef['interfaces'][number], `raw guest ${g.name}`);
  const t0 = performance.now();
  const [qemuEnd, passtEnd] = socketpair();
  // QEMU first (the long pole), then passt: passt's spawn overlaps QEMU's start, as in svirt.
  const image = openSync(g.image, constants.O_RDWR | constants.O_NOFOLLOW);
  const log = openSync(join(runtimeDir, 'qemu.log'), 'w', 0o600);
  let qemu: RawChild;
  const tq = performance.now();
  try {
    qemu = spawnRaw(argv[0] as string, argv.slice(1), ['ignore', 'ignore', log, 'ignore', image, qemuEnd]);
  } catch (err) {
    closeSync(passtEnd);
    throw err;
  } finally {
    closeSync(image);
    closeSync(log);
    closeSync(qemuEnd);
  }
  const qemuPid = qemu.pid;
  janitor.track(identity(qemuPid));
  let passt: RawChild;
  const plog = openSync(join(runtimeDir, 'passt.log'), 'w', 0o600);
  try {
    const fds: ('ignore' | number)[] = ['ignore', 'ignore', plog, 'ignore'];
    fds[PASST_FD] = passtEnd;
    passt = spawnRaw(pArgv[0] as string, pArgv.slice(1), fds);
  } finally {
    closeSync(passtEnd);
    closeSync(plog);
  }
  const passtId = identity(passt.pid);
  if (!passtId) throw new Error(`passt exited at once (see ${runtimeDir}/passt.log)`);
  janitor.track(passtId);
  const [t, passtMs] = await Promise.all([
    awaitQmp(qemu, qmpPath, tq, runtimeDir),
    waitUntil(
      () => {
        if (!isAlive(passtId)) throw new Error(`passt exited during start (see ${runtimeDir}/passt.log)`);
        return processStatus(passtId.pid)?.get('Seccomp')?.trim() === '2';
      },
      5_000,
      'passt to sandbox itself',
    ).then(() => performance.now() - t0),
  ]);
  const startMs = performance.now() - t0;
  return { qemu, qemuPid, passt, passtId, startMs, passtMs, qemuMs: t.startMs, runtimeDir };
}

/** SIGTERM to QEMU; passt (one-off over --fd) exits when QEMU's end closes, SIGTERM after 2 s. */
async function rawDevicesDestroy(r: RawDevicesGuest, janitor: Janitor): Promise<number> {
  const t0 = performance.now();
  r.qemu.kill('SIGTERM');
  await r.qemu.gone;
  janitor.untrack(r.qemuPid);
  const timer = setTimeout(() => r.passt.kill('SIGTERM'), 2_000);
  await r.passt.gone;
  clearTimeout(timer);
  const ms = performance.now() - t0;
  janitor.untrack(r.passtId.pid);
  rmSync(r.runtimeDir, { recursive: true, force: true });
  return ms;
}

/** The helpers (passt) svirt started for a guest, tracked until they are gone. */
async function helpersGone(ids: readonly ProcessIdentity[], janitor: Janitor): Promise<void> {
  for (const id of ids) {
    await waitUntil(() => !isAlive(id), 5_000, `helper ${id.pid} to exit after destroy`);
    janitor.untrack(id.pid);
  }
}

/**
 * svirt start + destroy of the devices guest and a raw start + destroy of the same devices,
 * alternately, `runs` times after one warm-up pair.
 */
export async function devicesRuns(ctx: RunContext, stack: string): Promise<DevicesResult> {
  if (!existsSync(PASST)) throw new Error(`${PASST} is not installed`);
  const tag = `devices-${slug(stack)}`;
  const hv = await openHypervisor(join(ctx.work, tag), stack);
  closeLater(hv, ctx.janitor);
  const g = prepareGuest(ctx, tag);
  hv.define(devicesXml(g));
  const raw = prepareGuest(ctx, `${tag}-raw`);
  const rawDir = join(ctx.work, `${tag}-raw`);
  mkdirSync(rawDir, { recursive: true, mode: 0o700 });
  const m = {
    svirt: [] as number[],
    svirtDestroy: [] as number[],
    raw: [] as number[],
    passt: [] as number[],
    qemu: [] as number[],
    rawDestroy: [] as number[],
  };
  for (let i = 0; i <= ctx.runs; i++) {
    const r = await rawDevicesStart(raw, join(rawDir, 'run'), ctx.janitor);
    const rd = await rawDevicesDestroy(r, ctx.janitor);
    const t0 = performance.now();
    const rec = await hv.start(g.name, { paused: true });
    const startMs = performance.now() - t0;
    const monitor = track(rec, ctx.janitor);
    const helpers = rec.helpers.flatMap((h) =>
      h.pid !== null && h.startTime !== null ? [{ pid: h.pid, startTime: h.startTime }] : [],
    );
    for (const h of helpers) ctx.janitor.track(h);
    if (!rec.helpers.some((h) => h.kind === 'passt')) throw new Error(`svirt started ${g.name} without a passt helper`);
    const q = qemuId(rec);
    const t1 = performance.now();
    await hv.destroy(g.name);
    const destroyMs = performance.now() - t1;
    await waitUntil(() => !isAlive(q), 10_000, `QEMU ${q.pid} to be gone`);
    ctx.janitor.untrack(q.pid);
    await helpersGone(helpers, ctx.janitor);
    await settle(monitor, ctx.janitor);
    if (i === 0 || i === ctx.runs || i % 5 === 0) ctx.log(`  devices: run ${i}/${ctx.runs}`);
    if (i === 0) continue; // warm-up
    m.raw.push(r.startMs);
    m.passt.push(r.passtMs);
    m.qemu.push(r.qemuMs);
    m.rawDestroy.push(rd);
    m.svirt.push(startMs);
    m.svirtDestroy.push(destroyMs);
  }
  return {
    stack,
    svirtStart: series(m.svirt),
    svirtDestroy: series(m.svirtDestroy),
    rawStart: series(m.raw),
    rawPasst: series(m.passt),
    rawQemu: series(m.qemu),
    rawDestroy: series(m.rawDestroy),
    devices: 'virtio NIC with passt, VNC on a unix socket, virtio channel org.qemu.guest_agent.0',
  };
}
