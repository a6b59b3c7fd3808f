/**
 * QEMU exiting on its own while `svirt serve` runs for the state dir: the same measure as the
 * library series' (exitOnce: from QEMU gone to its record gone), with a serve of the bench's
 * own beside it. When serve is told of the exit (issue 17: the monitor notifies it instead of
 * starting Node), this series shows that path; without it, the monitor's hook still cleans up
 * and the series measures that.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive, type ProcessIdentity } from '../src/host/proc.js';
import { guestXml } from './guest.js';
import { identity, sleep, waitUntil, type Janitor } from './proc.js';
import { series } from './stats.js';
import { closeLater, exitSeries, prepareGuest, slug, type LatencyRow, type RunContext } from './svirt-runs.js';
import { cliArgv, openHypervisor } from './svirt-setup.js';
import { listening } from '../src/remote/server.js';

/** `svirt serve` for one state dir, started and stopped by the bench (by pid). */
export class ServeProcess {
  private id: ProcessIdentity | undefined;
  private stopping: Promise<void> | undefined;
  readonly socket: string;

  constructor(
    private readonly stateDir: string,
    private readonly stack: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.socket = join(stateDir, 'serve.sock');
  }

  /** serve's log (its stdout and stderr). */
  get logFile(): string {
    return join(this.stateDir, 'serve.log');
  }

  /**
   * Spawns serve and waits (≤ 30 s) until its socket accepts connections and its warm worker
   * listens (src/cli/warm-worker.ts): a worker still warming up would compete for the CPUs with
   * what the bench measures, and a CLI command would not find it yet.
   */
  async start(janitor: Janitor): Promise<void> {
    const log = openSync(this.logFile, 'w', 0o600);
    let exited: string | undefined;
    try {
      const argv = cliArgv(this.stateDir, this.stack, ['serve', '--socket', this.socket]);
      const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', log, log], env: this.env });
      child.on('error', (err) => (exited = err.message));
      child.on('exit', (code, sig) => (exited = `exit ${code ?? sig}`));
      if (child.pid === undefined) throw new Error('svirt serve did not start');
      this.id = identity(child.pid);
      janitor.track(this.id);
      janitor.onCleanup(() => this.stop(janitor));
    } finally {
      closeSync(log);
    }
    const t0 = performance.now();
    const warm = join(this.stateDir, 'run', 'monitor', 'cli.sock');
    while (!(await listening(this.socket)) || !existsSync(warm)) {
      if (exited !== undefined) throw new Error(`svirt serve ${exited} before listening (see ${this.logFile})`);
      if (performance.now() - t0 > 30_000)
        throw new Error(`svirt serve and its warm worker did not listen within 30 s (see ${this.logFile})`);
      await sleep(10);
    }
  }

  /** Whether the serve the bench started still runs (a series with a dead serve measures nothing of it). */
  running(): boolean {
    return this.id !== undefined && isAlive(this.id);
  }

  /** SIGTERM to the serve the bench started (pid + start time checked), SIGKILL after 10 s; a second call waits for the first. */
  stop(janitor: Janitor): Promise<void> {
    this.stopping ??= this.end(janitor);
    return this.stopping;
  }

  private async end(janitor: Janitor): Promise<void> {
    const id = this.id;
    this.id = undefined;
    if (!id || !isAlive(id)) return;
    process.kill(id.pid, 'SIGTERM');
    try {
      await waitUntil(() => !isAlive(id), 10_000, `svirt serve ${id.pid} to exit`, 10);
    } catch {
      if (isAlive(id)) process.kill(id.pid, 'SIGKILL');
    }
    janitor.untrack(id.pid);
  }
}

/** The exit-to-cleaned-up series with `svirt serve` running for the guest's state dir. */
export async function exitRunsWithServe(ctx: RunContext, stack: string): Promise<LatencyRow> {
  const tag = `exit-serve-${slug(stack)}`;
  const dir = join(ctx.work, tag);
  const hv = await openHypervisor(dir, stack);
  closeLater(hv, ctx.janitor);
  const g = prepareGuest(ctx, tag);
  hv.define(guestXml(g));
  const serve = new ServeProcess(dir, stack);
  await serve.start(ctx.janitor);
  try {
    const { cleaned, hook } = await exitSeries(ctx, hv, g);
    if (!serve.running()) throw new Error(`svirt serve exited during the series (see ${dir}/serve.log)`);
    return {
      contender: 'svirt library, svirt serve running',
      stack,
      exitToCleanedUp: series(cleaned),
      monitorHook: series(hook),
      notes: [],
    };
  } finally {
    await serve.stop(ctx.janitor);
  }
}
