import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { DomainDef } from '../src/domain/domain-def.js';
import { formatDomainXml, parseDomainXml } from '../src/domain/index.js';
import { selfIdentity } from '../src/host/proc.js';
import { DacDriver } from '../src/security/dac/dac-driver.js';
import type { SecurityContext, SecurityDriver } from '../src/security/driver.js';
import { SelinuxDriver } from '../src/security/selinux/selinux-driver.js';
import { Store } from '../src/store/store.js';
import { guestSpec, guestXml } from './guest.js';
import { runTimed } from './proc.js';
import { series, type Series } from './stats.js';
import { cliArgv, openHypervisor } from './svirt-setup.js';
import type { RunContext } from './svirt-runs.js';

export interface LabelScale {
  readonly driver: string;
  /** Live reservations of this driver when the measured labels were made. */
  readonly live: number;
  /** Per label, ms (genLabel against the real SQLite store, reservation included). */
  readonly perLabel: Series;
  readonly note?: string;
}

export interface ReconcileVariant {
  /** The stack the records say they were started with. */
  readonly stack: string;
  readonly note: string;
  /** Hypervisor.reconcile() in-process, with every record's QEMU pid alive (nothing to clean). */
  readonly library: Series;
  /** `svirt --security-driver none reconcile` with those records (a whole CLI command). */
  readonly cli: Series;
}

export interface ReconcileScale {
  readonly records: number;
  readonly variants: ReconcileVariant[];
  /** The same command on an empty store, for the difference. */
  readonly cliEmpty: Series;
}

function context(store: Store, dir: string): SecurityContext {
  return {
    runtimeDir: join(dir, 'run', 'x'),
    runtimeRoot: join(dir, 'run'),
    memory: store,
    reservations: store,
    virtType: 'qemu',
    emulator: '/usr/bin/qemu-system-x86_64',
  };
}

/** genLabel `count` times on fresh guests (new uuid each), returning ms per label. */
function labelMany(driver: SecurityDriver, base: DomainDef, ctx: SecurityContext, count: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const def: DomainDef = { ...base, uuid: randomUUID(), name: `scale-${i}` };
    const t0 = performance.now();
    driver.genLabel(def, ctx);
    out.push(performance.now() - t0);
  }
  return out;
}

/** Releases every reservation of the store as stops do: their host-wide claims (/run/svirt-claims) go with them. */
function releaseAll(store: Store): void {
  const uuids = store.db.prepare('SELECT DISTINCT uuid FROM reservations').pluck().all() as string[];
  store.tx(() => {
    for (const uuid of uuids) store.releaseReservations(uuid);
  });
}

/**
 * Dynamic labels with `live` reservations held: the store is filled by the driver itself
 * (genLabel for `live` guests), then `measured` more labels are timed. The first
 * `measured` of the fill are the same measure on a near-empty store.
 */
export async function labelScale(ctx: RunContext, live: number, measured: number): Promise<LabelScale[]> {
  const dir = join(ctx.work, 'labels');
  const store = Store.open(dir);
  ctx.janitor.onCleanup(() => {
    releaseAll(store);
    store.close();
  });
  const base = parseDomainXml(guestXml(guestSpec('scale', '/nonexistent/scale.img')));
  const sctx = context(store, dir);
  const out: LabelScale[] = [];
  const selinux = new SelinuxDriver({ userspaceTest: true });
  const probe = selinux.probe();
  const drivers: { name: string; driver: SecurityDriver | undefined; why?: string }[] = [
    probe.status === 'enable'
      ? { name: 'selinux (dynamic MCS pair, c0.c1023)', driver: selinux }
      : { name: 'selinux', driver: undefined, why: probe.reason },
    { name: 'dac (dynamic uid, 100,000-id range)', driver: new DacDriver() },
  ];
  for (const d of drivers) {
    if (!d.driver) {
      out.push({ driver: d.name, live, perLabel: series([]), note: `skipped: ${d.why ?? ''}` });
      continue;
    }
    const first = labelMany(d.driver, base, sctx, measured);
    labelMany(d.driver, base, sctx, live - measured);
    out.push({ driver: d.name, live: 0, perLabel: series(first), note: `first ${measured} labels of the fill` });
    const atScale = labelMany(d.driver, base, sctx, measured);
    out.push({ driver: d.name, live, perLabel: series(atScale) });
    ctx.log(`  labels: ${d.name} done`);
  }
  return out;
}

/**
 * A reconcile with `records` running records whose QEMU pid is alive: every record points
 * at the bench's own process (pid + start time), so reconcile checks each and cleans none.
 * Two kinds of records: guests of a dac stack holding their uid reservation, and guests of
 * the none stack (no reservations at all). The rows are deleted directly afterwards (a
 * destroy would signal the bench itself).
 */
export async function reconcileScale(ctx: RunContext, records: number): Promise<ReconcileScale> {
  const dir = join(ctx.work, 'reconcile');
  const hv = await openHypervisor(dir, 'none');
  const me = selfIdentity();
  const drop = (): void => {
    hv.store.tx(() => {
      releaseAll(hv.store);
      hv.store.db.prepare('DELETE FROM running').run();
    });
  };
  ctx.janitor.onCleanup(() => {
    drop();
    hv.store.close();
  });
  const time = async (argv: string[]): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i <= ctx.runs; i++) {
      const r = await runTimed(argv, { check: true });
      if (i > 0) out.push(r.ms);
    }
    return out;
  };
  const cliEmpty = await time(cliArgv(dir, 'none', ['reconcile']));
  const variants: ReconcileVariant[] = [];
  const kinds = [
    { stack: 'dac' as const, note: 'each holds its dac uid reservation' },
    { stack: 'none' as const, note: 'no reservations: each reconcile parses every live XML to re-reserve (reserveAgain)' },
  ];
  for (const kind of kinds) {
    hv.store.tx(() => {
      for (let i = 0; i < records; i++) {
        const g = guestSpec(`rec-${i}`, `/nonexistent/rec-${i}.img`);
        const def = parseDomainXml(guestXml(g));
        hv.store.insertStarting({
          uuid: g.uuid,
          name: g.name,
          ownerPid: me.pid,
          ownerStart: me.startTime,
          runtimeDir: join(dir, 'run', g.uuid),
          qmpPath: join(dir, 'run', g.uuid, 'qmp.sock'),
          liveXml: formatDomainXml(def),
          persistent: false,
          stack: [kind.stack],
          resources: [],
          startedAt: Date.now(),
        });
        hv.store.updateRunning(g.uuid, { pid: me.pid, pidStart: me.startTime, paused: true });
        hv.store.setRunState(g.uuid, 'running', null);
        if (kind.stack === 'dac') hv.store.tryReserve('dac', String(1_900_000_000 + i), g.uuid);
      }
    });
    const library: number[] = [];
    for (let i = 0; i <= ctx.runs; i++) {
      const t0 = performance.now();
      const cleaned = await hv.reconcile();
      const ms = performance.now() - t0;
      if (cleaned.length > 0) throw new Error(`reconcile cleaned ${cleaned.length} live records`);
      if (i > 0) library.push(ms);
    }
    const cli = await time(cliArgv(dir, 'none', ['reconcile']));
    const left = hv.store.listRunning().length;
    drop();
    if (left !== records) throw new Error(`reconcile scale: ${records - left} records were cleaned up`);
    variants.push({ stack: kind.stack, note: kind.note, library: series(library), cli: series(cli) });
  }
  return { records, variants, cliEmpty: series(cliEmpty) };
}
