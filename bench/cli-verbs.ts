/**
 * The `svirt` CLI, spawned as a user spawns it (`node bin/svirt.js ...`, whatever bin/svirt.js
 * loads), for every verb the targets of issue 17 name: each run goes through a guest's whole
 * life, one process per command, with a raw QEMU start + destroy and a `node -e ''` in the same
 * environment alongside (the paired baselines).
 */
import { chmodSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ProcessIdentity } from '../src/host/proc.js';
import { guestXml } from './guest.js';
import { runTimed, type Timed } from './proc.js';
import { rawPairer } from './raw-qemu.js';
import { ServeProcess } from './serve-exit.js';
import { series } from './stats.js';
import {
  defineCandidate,
  hypervisorOnDemand,
  prepareGuest,
  qemuId,
  settle,
  slug,
  track,
  type LatencyRow,
  type RunContext,
  type SeriesRunner,
} from './svirt-runs.js';
import { cliArgv } from './svirt-setup.js';

/** The CLI verbs measured, in the order one run does them (LatencyRow field names). */
export const CLI_VERBS = ['listEmpty', 'define', 'start', 'list', 'dominfo', 'save', 'restore', 'destroy'] as const;
export type CliVerb = (typeof CLI_VERBS)[number];

/** How each verb is shown in the tables. */
export const VERB_LABEL: Record<CliVerb, string> = {
  listEmpty: 'list (empty store)',
  define: 'define FILE',
  start: 'start NAME --paused',
  list: 'list (1 guest running)',
  dominfo: 'dominfo NAME',
  save: 'save NAME FILE',
  restore: 'restore FILE --paused',
  destroy: 'destroy NAME',
};

/** The verbs the CLI hands to serve's warm worker (src/cli/warm-worker.ts), in the series with serve running. */
export const WARM_VERBS: readonly CliVerb[] = ['define', 'start', 'list', 'dominfo', 'save', 'restore', 'destroy'];

/** The verbs every stack's series measures; the headline stack's series measure all of CLI_VERBS. */
export const CORE_VERBS: readonly CliVerb[] = ['define', 'start', 'destroy'];

/**
 * One CLI series: a guest of its own in a state dir of its own, and an empty state dir for
 * `list`. Run i: a raw QEMU start + destroy, then each verb in CLI_VERBS order (those asked
 * for; start and destroy always), each right after a `node -e ''` in the same environment:
 * list (empty store), define (a new guest, undefined again by the bench), start --paused,
 * list, dominfo, save, restore --paused, destroy. The bench waits for the monitor's exit hook
 * after each QEMU exit (save, destroy), so no command competes with the hook for the CPUs.
 */
export async function cliRunner(
  ctx: RunContext,
  stack: string,
  opts: { env?: NodeJS.ProcessEnv; label?: string; verbs?: readonly CliVerb[]; serve?: boolean } = {},
): Promise<SeriesRunner> {
  const tag = `cli-${slug(stack)}${opts.env ? '-noca' : ''}${opts.serve ? '-serve' : ''}`;
  const dir = join(ctx.work, tag);
  const emptyDir = join(ctx.work, `${tag}-empty`);
  const saves = join(ctx.work, `${tag}-saves`);
  mkdirSync(emptyDir, { recursive: true, mode: 0o711 });
  chmodSync(emptyDir, 0o711);
  mkdirSync(saves, { recursive: true, mode: 0o711 });
  // The bench's own handle on the same store (it reads records and undefines between define
  // runs) is open only around that work: until session 22 it stayed open, so no CLI verb here
  // paid the checkpoint and sync of a verb alone on its store.
  const withHv = hypervisorOnDemand(ctx.janitor, dir, stack);
  const g = prepareGuest(ctx, tag);
  await withHv((hv) => hv.define(guestXml(g)));
  const env = opts.env ?? process.env;
  // With `svirt serve` running for the state dir (in the CLI's environment), the CLI hands the
  // verbs to its warm worker (src/cli/warm-worker.ts); a command it declined would be measured
  // as the CLI's own run under this row's name, so the series fails on any.
  const serve = opts.serve ? new ServeProcess(dir, stack, env) : undefined;
  await serve?.start(ctx.janitor);
  const verbs = new Set<CliVerb>([...(opts.verbs ?? CLI_VERBS), 'start', 'destroy']);
  const rawOnce = rawPairer(ctx, tag);
  const m = Object.fromEntries(CLI_VERBS.map((v) => [v, [] as number[]])) as Record<CliVerb, number[]>;
  const base = { raw: [] as number[], rawDestroy: [] as number[], node: [] as number[], afterExit: [] as number[] };
  let nodeNow: number[] = [];
  /** `node -e ''`, then the command: the floor right beside each verb. */
  const cli = async (verb: string[], stateDir = dir): Promise<Timed> => {
    nodeNow.push((await runTimed([process.execPath, '-e', ''], { env, check: true })).ms);
    return runTimed(cliArgv(stateDir, stack, verb), { env, check: true });
  };

  /** The running record after a command that starts the guest; its QEMU and monitor tracked. */
  const running = async (what: string): Promise<{ q: ProcessIdentity; monitor: ProcessIdentity | undefined }> => {
    const rec = await withHv((hv) => hv.store.getRunning(g.uuid));
    if (!rec) throw new Error(`svirt ${what} ${g.name} returned but no running record exists`);
    return { q: qemuId(rec), monitor: track(rec, ctx.janitor) };
  };
  /** Runs a command that ends QEMU; waits for QEMU and the monitor's hook; gives when QEMU went. */
  const ending = async (
    verb: string[],
    r: { q: ProcessIdentity; monitor: ProcessIdentity | undefined },
  ): Promise<{ t: Timed; goneAt: number | undefined }> => {
    const gone = ctx.watcher.watch(r.q);
    const t = await cli(verb);
    const goneAt = await gone;
    ctx.janitor.untrack(r.q.pid);
    await settle(r.monitor, ctx.janitor);
    return { t, goneAt };
  };

  return {
    async run(i) {
      const rawPair = await rawOnce();
      nodeNow = [];
      const t: Partial<Record<CliVerb, Timed>> = {};
      if (verbs.has('listEmpty')) t.listEmpty = await cli(['list'], emptyDir);
      if (verbs.has('define')) {
        const d = (t.define = await cli(['define', defineCandidate(ctx, tag, i).file]));
        const defined = /Domain '([^']+)' defined/.exec(d.stdout)?.[1];
        if (defined === undefined) throw new Error(`svirt define printed no name: ${d.stdout.trim()}`);
        await withHv((hv) => hv.undefine(defined));
      }
      t.start = await cli(['start', g.name, '--paused']);
      let guest = await running('start');
      if (verbs.has('list')) {
        const l = (t.list = await cli(['list']));
        if (!l.stdout.includes(g.name)) throw new Error(`svirt list does not show ${g.name}: ${l.stdout.trim()}`);
      }
      if (verbs.has('dominfo')) t.dominfo = await cli(['dominfo', g.name]);
      if (verbs.has('save') || verbs.has('restore')) {
        const file = join(saves, `${i}.save`);
        t.save = (await ending(['save', g.name, file], guest)).t;
        t.restore = await cli(['restore', file, '--paused']);
        guest = await running('restore');
        rmSync(file, { force: true });
      }
      const destroy = await ending(['destroy', g.name], guest);
      t.destroy = destroy.t;
      if (i === 0) return; // warm-up (page cache): not counted
      for (const v of CLI_VERBS) {
        const x = t[v];
        if (x) m[v].push(x.ms);
      }
      base.raw.push(rawPair.start);
      base.rawDestroy.push(rawPair.destroy);
      base.node.push(...nodeNow);
      if (destroy.goneAt !== undefined) base.afterExit.push(destroy.t.endAt - destroy.goneAt);
    },
    finish: (): LatencyRow => {
      if (serve) {
        const declined = readFileSync(serve.logFile, 'latin1').match(/^warm worker: declined .*$/gm) ?? [];
        if (declined.length > 0) throw new Error(`serve's warm worker declined ${declined.length} commands: ${declined[0]}`);
        void serve.stop(ctx.janitor);
      }
      return row();
    },
  };

  function row(): LatencyRow {
    return {
      contender: opts.label ?? 'svirt CLI',
      stack,
      ...Object.fromEntries(CLI_VERBS.filter((v) => m[v].length > 0).map((v) => [v, series(m[v])])),
      destroyAfterExit: series(base.afterExit),
      pairedRaw: series(base.raw),
      pairedRawDestroy: series(base.rawDestroy),
      pairedNode: series(base.node),
      notes: [],
    };
  }
}
