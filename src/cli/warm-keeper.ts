/**
 * `svirt serve` keeps one warm worker running (warm-worker.ts, bin/svirt-warm.js): started with
 * serve, started again when it ends (a caller that went takes its worker with it; a worker ends
 * by itself after many commands), given up after it ended six times in a row within seconds of
 * its start (it cannot start here), and stopped with serve after the command it runs, if any.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../host/package-root.js';

/** A worker that ends sooner than this after its start did not get going. */
const QUICK_END_MS = 5000;
/** Quick ends in a row after which serve runs without a worker. */
const QUICK_ENDS = 6;

export class WarmKeeper {
  private child: ChildProcess | undefined;
  private quickEnds = 0;
  private closing = false;

  constructor(private readonly o: { readonly stateDir: string; readonly log: (line: string) => void; readonly debug: boolean }) {}

  start(): void {
    if (this.closing) return;
    const entry = join(packageRoot(), 'bin', 'svirt-warm.js');
    const child = spawn(process.execPath, [entry, this.o.stateDir, String(process.pid), ...(this.o.debug ? ['--debug'] : [])], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    this.child = child;
    const started = Date.now();
    child.on('error', (err) => this.o.log(`warm worker: ${err.message}`));
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      if (this.closing) return;
      this.quickEnds = Date.now() - started < QUICK_END_MS ? this.quickEnds + 1 : 0;
      if (this.quickEnds >= QUICK_ENDS) {
        this.o.log(`warm worker: ended ${this.quickEnds} times right after its start; CLI commands run in their own process`);
        return;
      }
      if (this.o.debug || code !== 0)
        this.o.log(`warm worker ${child.pid ?? '?'} ended (${signal ?? `exit ${code}`}): starting another`);
      setTimeout(() => this.start(), 100).unref();
    });
  }

  /** SIGTERM to the worker, which ends after the command it runs; SIGKILL after `graceMs`. */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    const child = this.child;
    if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const ended = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceMs)));
    if ((await Promise.race([ended, late])) === 'late') {
      child.kill('SIGKILL');
      await ended;
    }
    clearTimeout(timer);
  }
}
