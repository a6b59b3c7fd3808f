/**
 * `npm run bench`: svirt against raw QEMU and libvirt, side by side in one run (issue 7).
 * Prints markdown tables, writes bench/results/bench-<date>.json (or --out). See docs/bench.md.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { isAlive, type ProcessIdentity } from '../src/host/proc.js';
import { PASST } from '../src/network/passt.js';
import { density, densityMemoryShort } from './density.js';
import { devicesRuns } from './devices.js';
import { migrationMissing, migrationRuns } from './migration.js';
import { QEMU, guestSpec, guestXml, workDir, writeGuestXml } from './guest.js';
import { installLibvirt, libvirtMissing } from './libvirt-host.js';
import { LibvirtDaemons, libvirtRuns } from './libvirt.js';
import { parseOptions, type BenchOptions, type Section } from './options.js';
import { Janitor, identity, waitUntil } from './proc.js';
import { rawRuns } from './raw-qemu.js';
import type { BenchResults, Machine } from './bench-results.js';
import { CORE_VERBS, WARM_VERBS, cliRunner } from './cli-verbs.js';
import { markdown, summaryMarkdown } from './report.js';
import { labelScale, reconcileScale } from './scale.js';
import { exitRunsWithServe } from './serve-exit.js';
import { startSteps } from './start-steps.js';
import { PKG, cliSteps, importClosure, startupCosts } from './startup.js';
import { hypervisorOnDemand, libraryRunner, prepareGuest, roundRobin, type RunContext } from './svirt-runs.js';
import { envWithoutExtraCerts, stackAvailable } from './svirt-setup.js';
import { computeTargets } from './targets.js';
import { ProcWatcher } from './watch.js';

function firstLine(argv: string[]): string | undefined {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n')[0]?.trim() : undefined;
}

function machine(): Machine {
  const libvirt = existsSync('/usr/sbin/libvirtd')
    ? firstLine(['/usr/sbin/libvirtd', '--version'])?.replace(/^.*\(libvirt\) /, '')
    : undefined;
  return {
    date: new Date().toISOString(),
    nproc: cpus().length,
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    ramGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    qemu: firstLine([QEMU, '--version']) ?? 'QEMU not found',
    node: process.version,
    ...(libvirt !== undefined ? { libvirt } : {}),
    kvm: existsSync('/dev/kvm') ? '/dev/kvm present (not used: TCG guests)' : 'no /dev/kvm',
  };
}

async function main(opts: BenchOptions): Promise<number> {
  const began = performance.now();
  const load: Record<string, number[]> = {};
  const log = (line: string): void => {
    const l = loadavg().map((x) => Math.round(x * 100) / 100);
    load[line] = l;
    process.stderr.write(
      `[bench ${((performance.now() - began) / 1000).toFixed(0).padStart(4)} s, load ${l[0]?.toFixed(2)}] ${line}\n`,
    );
  };
  const janitor = new Janitor();
  const watcher = new ProcWatcher();
  const work = janitor.dir(workDir());
  const ctx: RunContext = { work, runs: opts.runs, janitor, watcher, log };
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: cleaning up`);
    void janitor.cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const sections = new Set<Section>(opts.sections);
  if (!existsSync(QEMU)) {
    for (const s of ['raw', 'library', 'serve', 'cli', 'steps', 'libvirt', 'density', 'devices', 'migration'] as const)
      sections.delete(s);
    log(`${QEMU} is not installed: only the start-up and scale sections run`);
  }
  const available: string[] = [];
  const skipped: string[] = [];
  for (const s of opts.stacks) {
    const a = await stackAvailable(s);
    if (a.ok) available.push(s);
    else skipped.push(`stack ${s}: ${a.reason}`);
  }
  const headline = ['dac,landlock', 'landlock', 'dac', 'none'].find((s) => available.includes(s)) ?? available[0] ?? 'none';
  const res: BenchResults = {
    machine: machine(),
    options: { ...opts, sections: [...opts.sections] },
    headlineStack: headline,
    latency: [],
    steps: [],
    targets: [],
    skipped,
    durationS: 0,
    cleanup: [],
    load,
  };
  log(`work dir ${work}; ${opts.runs} runs per cell; stacks ${available.join(' ')}; headline ${headline}`);
  let failed = false;
  try {
    if (sections.has('startup')) {
      log('node start-up and dependency costs');
      res.startup = await startupCosts(opts.runs, join(work, 'empty-state'));
      res.importGraph = {};
      for (const entry of [
        'src/cli/main.js',
        'src/cli/commands/define.js',
        'src/cli/commands/lifecycle.js',
        'src/cli/commands/list.js',
      ]) {
        const c = importClosure(entry);
        res.importGraph[entry] = { files: c.files.length, packages: c.packages, list: c.files };
      }
    }
    if (sections.has('raw')) {
      log('raw QEMU');
      const raw = await rawRuns(ctx);
      res.latency.push(raw.row);
      res.steps.push(raw.steps);
    }
    if (sections.has('library')) {
      log(`svirt library: start, destroy, define, QEMU exiting; stacks ${available.join(' ')}, round-robin`);
      const runners = [];
      for (const stack of available) runners.push(await libraryRunner(ctx, stack));
      res.latency.push(...(await roundRobin(ctx, runners, 'library')));
    }
    if (sections.has('cli')) {
      log(
        `svirt CLI: every verb for ${headline} (with and without NODE_EXTRA_CA_CERTS), start/destroy/define for ${available.join(' ')}, round-robin`,
      );
      const runners = [];
      // Every verb for the headline stack (with and without NODE_EXTRA_CA_CERTS); the stacks'
      // differences show in start, destroy and define.
      for (const stack of available) runners.push(await cliRunner(ctx, stack, stack === headline ? {} : { verbs: CORE_VERBS }));
      if (process.env['NODE_EXTRA_CA_CERTS'] !== undefined) {
        runners.push(
          await cliRunner(ctx, headline, {
            env: envWithoutExtraCerts(),
            label: 'svirt CLI without NODE_EXTRA_CA_CERTS',
          }),
        );
      }
      // The same verbs with `svirt serve` running: the CLI hands them to serve's warm worker.
      runners.push(await cliRunner(ctx, headline, { serve: true, verbs: WARM_VERBS, label: 'svirt CLI, serve running' }));
      if (process.env['NODE_EXTRA_CA_CERTS'] !== undefined) {
        runners.push(
          await cliRunner(ctx, headline, {
            env: envWithoutExtraCerts(),
            serve: true,
            verbs: WARM_VERBS,
            label: 'svirt CLI, serve running, without NODE_EXTRA_CA_CERTS',
          }),
        );
      }
      res.latency.push(...(await roundRobin(ctx, runners, 'CLI')));
    }
    if (sections.has('serve')) {
      log(`svirt library, QEMU exits, with \`svirt serve\` running for the state dir, ${headline}`);
      res.latency.push(await exitRunsWithServe(ctx, headline));
    }
    if (sections.has('steps')) {
      for (const stack of [...new Set(['none', headline])].filter((s) => available.includes(s))) {
        log(`start split into steps, library, ${stack}`);
        res.steps.push(await startSteps(ctx, stack));
      }
      log(`CLI split into steps, ${headline}`);
      res.cliSteps = await cliStepRuns(ctx, headline);
    }
    if (sections.has('libvirt')) {
      let missing = libvirtMissing();
      if (missing !== undefined && opts.withLibvirt && process.getuid?.() === 0) {
        await installLibvirt(log);
        missing = libvirtMissing();
      }
      if (missing !== undefined) {
        const why = `libvirt skipped: ${missing}${opts.withLibvirt ? '' : ' (run with --with-libvirt to install it)'}`;
        log(why);
        res.libvirt = { skipped: why };
        skipped.push(why);
      } else {
        log('libvirt: starting virtlogd + libvirtd (UNIX sockets only)');
        const d = new LibvirtDaemons(work);
        await d.start(janitor);
        log(`libvirt: first connection took ${d.firstConnectMs.toFixed(0)} ms; measuring virsh`);
        const l = await libvirtRuns(ctx, d);
        res.libvirt = l;
        res.latency.push(l.row);
        await d.stop(janitor);
      }
    }
    // Before scale and density: density's 200 guests leave a load of ~20 behind them for a minute.
    if (sections.has('devices')) {
      const stack = available.includes('dac,landlock') ? 'dac,landlock' : headline;
      if (existsSync(PASST)) {
        log(`devices: NIC (passt), VNC and a channel, library (${stack}) against raw QEMU + passt, alternately`);
        res.devices = await devicesRuns(ctx, stack);
      } else {
        const why = `devices skipped: ${PASST} is not installed (Debian package passt)`;
        log(why);
        res.devices = { skipped: why };
        skipped.push(why);
      }
    }
    if (sections.has('scale')) {
      log(`labels with ${opts.reservations} live reservations`);
      res.labels = await labelScale(ctx, opts.reservations, Math.min(1000, opts.reservations));
      log(`reconcile with ${opts.records} running records`);
      res.reconcile = await reconcileScale(ctx, opts.records);
    }
    if (sections.has('density')) {
      const short = densityMemoryShort(opts.density);
      if (short !== undefined) {
        const why = `density skipped: ${short}`;
        log(why);
        res.density = { skipped: why };
        skipped.push(why);
      } else {
        log(`density: ${opts.density} guests at once, ${headline}`);
        res.density = await density(ctx, opts.density, headline);
      }
    }
    if (sections.has('migration')) {
      const missing = migrationMissing();
      const stack = available.includes('dac,landlock') ? 'dac,landlock' : headline;
      if (missing === undefined) {
        log(`migration: two svirt hosts (network namespaces, ${stack}) against raw QEMU between the same two, alternately`);
        res.migration = await migrationRuns(ctx, stack);
      } else {
        const why = `migration skipped: ${missing}`;
        log(why);
        res.migration = { skipped: why };
        skipped.push(why);
      }
    }
  } catch (err) {
    failed = true;
    log(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  } finally {
    res.cleanup = await janitor.cleanup();
    await watcher.close();
  }
  res.targets = computeTargets(res);
  res.durationS = Math.round((performance.now() - began) / 100) / 10;
  const md = markdown(res);
  process.stdout.write(md);
  const out =
    opts.out ?? join(PKG, 'bench', 'results', `bench-${res.machine.date.slice(0, 10)}${opts.quick ? '-quick' : ''}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ ...res, markdown: md, summary: summaryMarkdown(res) }, null, 2) + '\n');
  writeFileSync(out.replace(/\.json$/, '') + '.md', md);
  log(`wrote ${out}; ${res.durationS} s${res.cleanup.length ? `; cleanup: ${res.cleanup.join('; ')}` : ''}`);
  return failed ? 1 : 0;
}

/** bench/cli-steps.ts for start, destroy and define; the bench destroys/starts around it. */
async function cliStepRuns(ctx: RunContext, stack: string): ReturnType<typeof cliSteps> {
  const dir = join(ctx.work, 'cli-steps');
  const withHv = hypervisorOnDemand(ctx.janitor, dir, stack);
  const g = prepareGuest(ctx, 'cli-steps');
  await withHv((hv) => hv.define(guestXml(g)));
  const defG = guestSpec('bench-cli-steps-def', g.image);
  const defFile = writeGuestXml(ctx.work, defG);
  let monitor: ProcessIdentity | undefined;
  const stopAndSettle = async (): Promise<void> => {
    await withHv(async (hv) => {
      const rec = hv.store.getRunning(g.uuid);
      if (rec?.monitorPid) monitor = identity(rec.monitorPid);
      if (rec) await hv.destroy(g.name);
    });
    const m = monitor;
    if (m) await waitUntil(() => !isAlive(m), 20_000, 'the monitor to exit');
    monitor = undefined;
  };
  const startSettled = async (): Promise<void> => {
    const rec = await withHv((hv) => hv.start(g.name, { paused: true }));
    monitor = rec.monitorPid ? identity(rec.monitorPid) : undefined;
  };
  return cliSteps(ctx.runs, dir, stack, [
    { verb: 'start', arg: g.name, after: stopAndSettle },
    { verb: 'destroy', arg: g.name, before: startSettled, after: stopAndSettle },
    { verb: 'define', arg: defFile, after: () => withHv((hv) => void hv.undefine(defG.name)) },
  ]);
}

let opts: BenchOptions;
try {
  opts = parseOptions(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
}
process.exitCode = await main(opts);
