/**
 * The `migration` section (issue 16): live migration between two svirt hosts, side by side
 * with raw QEMU migrating the same guest between the same two places, run by run.
 *
 * The hosts are the migration tests' (test/support/hosts.ts): a network namespace each on a
 * bridged LAN (10.77.0.N), a state dir, a DAC id range and a `svirt serve` each. svirt's hop
 * is `svirt --json migrate --live NAME DEST-URI` run on the source host, spawn to exit. Raw
 * QEMU's hop is what svirt's steps do, minus svirt: start the destination QEMU in the other
 * namespace with svirt's argv and `-incoming defer`, set `late-block-activate`, listen on
 * its LAN address, `migrate` the source there, wait until both ends say `completed`, `cont`
 * the destination, end the source. Both hop back and forth, one svirt hop and one raw hop
 * alternately (which goes first alternates too).
 */
import { closeSync, constants, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { parseDomainXml } from '../src/domain/index.js';
import { QmpClient } from '../src/qemu/qmp-client.js';
import { guestOsXml, guestImage } from '../test/support/guest-image.js';
import { makeHosts, type TestHost } from '../test/support/hosts.js';
import { isServeOrWorker, nsProcesses } from '../test/support/netns.js';
import { spawnRaw, type RawChild } from './raw-child.js';
import { guestSpec, guestXml, makeImage, type GuestSpec } from './guest.js';
import { identity, runTimed, sleep, waitUntil } from './proc.js';
import { awaitQmp, rawArgv } from './raw-qemu.js';
import { series, type Series } from './stats.js';
import type { RunContext } from './svirt-runs.js';

/** One contender's hops of one guest. */
export interface MigrationSeries {
  /** The whole hop: svirt's CLI spawn to exit; raw: the destination's spawn until the source is gone. */
  readonly total: Series;
  /** QEMU's `total-time` of the stream (query-migrate on the source). */
  readonly stream: Series;
  /** QEMU's `downtime`: the guest stopped on the source until the stream completed. */
  readonly downtime: Series;
  /** RAM bytes sent, in KiB. */
  readonly transferredKiB: Series;
}

export interface MigrationKind {
  /** 'paused': bench/guest.ts's guest, paused, moved with --paused; 'booted': the guest image, running. */
  readonly kind: 'paused' | 'booted';
  readonly guest: string;
  readonly svirt: MigrationSeries;
  readonly raw: MigrationSeries;
  /** `node -e ''` in the svirt CLI's environment, right before each svirt hop: the CLI's floor. */
  readonly pairedNode: Series;
}

export interface MigrationResult {
  readonly stack: string;
  readonly kinds: MigrationKind[];
  readonly notes: string[];
}

interface Hop {
  readonly total: number;
  readonly stream: number;
  readonly downtime: number;
  readonly bytes: number;
}

/** Why the section cannot run here, or undefined. */
export function migrationMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'the test hosts need root (network namespaces, per-guest uids)';
  return undefined;
}

/** A node:test-like context whose after() hooks the janitor runs (in reverse, as the hosts expect). */
function janitorContext(ctx: RunContext): TestContext {
  return { after: (fn: () => unknown) => ctx.janitor.onCleanup(async () => void (await fn())) } as unknown as TestContext;
}

const BOOT_SETTLE_MS = 20_000;

export async function migrationRuns(ctx: RunContext, stack: string): Promise<MigrationResult> {
  const notes: string[] = [];
  const [h1, h2] = makeHosts(janitorContext(ctx), 2, stack) as [TestHost, TestHost];
  await Promise.all([h1.serve(), h2.serve()]);
  const images = join(ctx.work, 'migration-images');
  mkdirSync(images, { recursive: true, mode: 0o711 });
  const kinds: MigrationKind[] = [];
  kinds.push(await kindRuns(ctx, h1, h2, images, 'paused'));
  const image = guestImage();
  if ('skip' in image) notes.push(`booted guest skipped: ${image.skip}`);
  else kinds.push(await kindRuns(ctx, h1, h2, images, 'booted'));
  return { stack, kinds, notes };
}

function kindXml(g: GuestSpec, kind: 'paused' | 'booted'): { xml: string; guest: string } {
  const xml = guestXml(g);
  if (kind === 'paused') return { xml, guest: '64 MiB, no OS, paused (bench/guest.ts)' };
  const image = guestImage();
  if ('skip' in image) throw new Error(image.skip);
  return {
    // The guest image's kernel and initramfs need 128 MiB (96 panics unpacking the initramfs).
    xml: xml
      .replace("<memory unit='MiB'>64</memory>", "<memory unit='MiB'>128</memory>")
      .replace(/<os>.*<\/os>/, guestOsXml(image, 'pc', 'console=ttyS0 panic=-1 no_timer_check')),
    guest: '128 MiB, the test guest image booted (Debian kernel, busybox), running',
  };
}

async function kindRuns(
  ctx: RunContext,
  h1: TestHost,
  h2: TestHost,
  images: string,
  kind: 'paused' | 'booted',
): Promise<MigrationKind> {
  const paused = kind === 'paused';
  const sg = guestSpec(`bench-mig-${kind}`, makeImage(join(images, `svirt-${kind}.img`)));
  const rg = guestSpec(`bench-mig-${kind}-raw`, makeImage(join(images, `raw-${kind}.img`)));
  const { xml, guest } = kindXml(sg, kind);
  const file = join(images, `${sg.name}.xml`);
  writeFileSync(file, xml);
  await h1.svirtOk(['define', file]);
  await h1.svirtOk(['start', sg.name, ...(paused ? ['--paused'] : [])]);
  const raw = new RawMigrator(ctx, parseDomainXml(kindXml(rg, kind).xml), rg, join(ctx.work, `migration-raw-${kind}`), paused);
  await raw.start(h1);
  if (!paused) {
    ctx.log(`  migration (${kind}): both guests boot; ${BOOT_SETTLE_MS / 1000} s before the first hop`);
    await sleep(BOOT_SETTLE_MS);
  }
  const s: Hop[] = [];
  const r: Hop[] = [];
  const node: number[] = [];
  let here = h1;
  let rawHere = h1;
  const svirtHop = async (): Promise<Hop> => {
    node.push((await runTimed([process.execPath, '-e', ''], { env: { ...process.env, ...here.env }, check: true })).ms);
    const there = here === h1 ? h2 : h1;
    const hop = await svirtMigrate(here, there, sg.name, paused);
    await settled(here, raw);
    here = there;
    return hop;
  };
  const rawHop = async (): Promise<Hop> => {
    const there = rawHere === h1 ? h2 : h1;
    const hop = await raw.migrate(there);
    rawHere = there;
    return hop;
  };
  for (let i = 0; i <= ctx.runs; i++) {
    if (paused && i > 0) {
      // A fresh start each run (untimed): the paused guest makes one hop, host1 to host2.
      // Never a second one: QEMU 7.2 aborts when images a paused incoming guest never
      // activated are migrated on (see docs/bench.md), under svirt and raw QEMU alike.
      await here.svirtOk(['destroy', sg.name]);
      await settled(here, raw);
      here = h1;
      await h1.svirtOk(['start', sg.name, '--paused']);
      await raw.stop();
      await raw.start(h1);
      rawHere = h1;
    }
    let sh: Hop;
    let rh: Hop;
    if (i % 2 === 0) {
      sh = await svirtHop();
      rh = await rawHop();
    } else {
      rh = await rawHop();
      sh = await svirtHop();
    }
    if (i === 0 || i === ctx.runs || i % 5 === 0) ctx.log(`  migration (${kind}): hop ${i}/${ctx.runs}`);
    if (i === 0) {
      node.length = 0; // warm-up
      continue;
    }
    s.push(sh);
    r.push(rh);
  }
  await here.svirtOk(['destroy', sg.name]);
  await settled(here, raw);
  await raw.stop();
  return { kind, guest, svirt: seriesOf(s), raw: seriesOf(r), pairedNode: series(node) };
}

function seriesOf(hops: readonly Hop[]): MigrationSeries {
  return {
    total: series(hops.map((h) => h.total)),
    stream: series(hops.map((h) => h.stream)),
    downtime: series(hops.map((h) => h.downtime)),
    transferredKiB: series(hops.map((h) => h.bytes / 1024)),
  };
}

async function svirtMigrate(from: TestHost, to: TestHost, name: string, paused: boolean): Promise<Hop> {
  const args = ['--json', 'migrate', '--live', ...(paused ? ['--paused'] : []), name, to.uri];
  const t0 = performance.now();
  const r = await from.svirt(args);
  const total = performance.now() - t0;
  if (r.code !== 0) throw new Error(`svirt migrate ${name} ${from.name} -> ${to.name} failed (${r.code}): ${r.stderr}`);
  const j = JSON.parse(r.stdout) as { streamMs?: number; downtimeMs?: number; bytes?: number };
  return { total, stream: j.streamMs ?? NaN, downtime: j.downtimeMs ?? NaN, bytes: j.bytes ?? NaN };
}

/**
 * Until the source host runs nothing of svirt's but its serve and serve's warm worker (the old QEMU, its monitor and
 * the monitor's exit hook gone), bounded; the raw QEMUs (`raw`) run there too.
 */
async function settled(h: TestHost, raw: RawMigrator): Promise<void> {
  await waitUntil(
    () => nsProcesses(h.ns).every((p) => isServeOrWorker(p.args) || p.pid === raw.pid),
    20_000,
    `${h.name} to run nothing but its serve`,
    20,
  );
}

interface RawQemu {
  readonly child: RawChild;
  readonly pid: number;
  readonly qmp: QmpClient;
  readonly dir: string;
}

/** One guest migrated by hand between raw QEMUs in the hosts' namespaces. */
class RawMigrator {
  private current: RawQemu | undefined;
  private seq = 0;

  /** The running raw QEMU's pid. */
  get pid(): number | undefined {
    return this.current?.pid;
  }

  constructor(
    private readonly ctx: RunContext,
    private readonly def: ReturnType<typeof parseDomainXml>,
    private readonly g: GuestSpec,
    private readonly dir: string,
    private readonly paused: boolean,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  async start(h: TestHost): Promise<void> {
    this.current = await this.spawn(h, false);
    if (!this.paused) await this.current.qmp.execute('cont');
  }

  /** QEMU (svirt's argv, paused) in h's namespace, the image as fd 4; `incoming`: with `-incoming defer`. */
  private async spawn(h: TestHost, incoming: boolean): Promise<RawQemu> {
    const dir = join(this.dir, `q${this.seq++}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { mode: 0o700 });
    const qmpPath = join(dir, 'qmp.sock');
    const argv = [...rawArgv(this.def, qmpPath), ...(incoming ? ['-incoming', 'defer'] : [])];
    const image = openSync(this.g.image, constants.O_RDWR | constants.O_NOFOLLOW);
    const log = openSync(join(dir, 'qemu.log'), 'w', 0o600);
    let child: RawChild;
    const t0 = performance.now();
    try {
      // nsenter execs QEMU: the child's pid is QEMU's, its fds (the image as 4) kept.
      child = spawnRaw(
        '/usr/bin/nsenter',
        [`--net=/run/netns/${h.ns}`, '--', ...argv],
        ['ignore', 'ignore', log, 'ignore', image],
      );
    } finally {
      closeSync(image);
      closeSync(log);
    }
    const pid = child.pid;
    this.ctx.janitor.track(identity(pid));
    await awaitQmp(child, qmpPath, t0, dir);
    const qmp = await QmpClient.connect(qmpPath, 10_000);
    return { child, pid, qmp, dir };
  }

  /** One hop to `to`, timed from the destination's spawn until the source QEMU is gone. */
  async migrate(to: TestHost): Promise<Hop> {
    const src = this.current;
    if (!src) throw new Error('raw migration: no source QEMU');
    try {
      return await this.hop(src, to);
    } catch (err) {
      const logs = [src.dir, join(this.dir, `q${this.seq - 1}`)]
        .map((d) => {
          try {
            return `${d}/qemu.log: ${readFileSync(join(d, 'qemu.log'), 'utf8').trim()}`;
          } catch {
            return '';
          }
        })
        .join('; ');
      throw new Error(`raw migration to ${to.name}: ${err instanceof Error ? err.message : String(err)} (${logs})`);
    }
  }

  private async hop(src: RawQemu, to: TestHost): Promise<Hop> {
    const t0 = performance.now();
    const dst = await this.spawn(to, true);
    const port = 49152 + Math.floor(Math.random() * 10_000);
    const uri = `tcp:${to.addr}:${port}`;
    await dst.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'late-block-activate', state: true }] });
    await dst.qmp.execute('migrate-incoming', { uri });
    await src.qmp.execute('migrate', { uri });
    const done = await completed(src.qmp, 'source');
    await completed(dst.qmp, 'destination');
    if (!this.paused) await dst.qmp.execute('cont');
    await this.end(src);
    const total = performance.now() - t0;
    this.current = dst;
    return {
      total,
      stream: done['total-time'] ?? NaN,
      downtime: done.downtime ?? NaN,
      bytes: done.ram?.transferred ?? NaN,
    };
  }

  private async end(q: RawQemu): Promise<void> {
    q.qmp.close();
    q.child.kill('SIGTERM');
    await q.child.gone;
    this.ctx.janitor.untrack(q.pid);
    rmSync(q.dir, { recursive: true, force: true });
  }

  async stop(): Promise<void> {
    if (this.current) await this.end(this.current);
    this.current = undefined;
  }
}

interface MigrateStatus {
  status?: string;
  'error-desc'?: string;
  'total-time'?: number;
  downtime?: number;
  ram?: { transferred?: number };
}

/** Polls query-migrate every 25 ms (as svirt does) until `completed`; bounded. */
async function completed(q: QmpClient, side: string): Promise<MigrateStatus> {
  const deadline = performance.now() + 120_000;
  for (;;) {
    const st = (await q.execute('query-migrate')) as MigrateStatus;
    if (st.status === 'completed') return st;
    if (st.status === 'failed' || st.status === 'cancelled')
      throw new Error(`raw migration failed on the ${side}: ${st['error-desc'] ?? st.status}`);
    if (performance.now() > deadline) throw new Error(`raw migration: the ${side} did not complete within 120 s`);
    await sleep(25);
  }
}
