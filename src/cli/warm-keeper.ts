/**
 * `svirt serve` keeps one warm worker running (warm-worker.ts, bin/svirt-warm.js): started with
 * serve, started again when it ends (a caller that went takes its worker with it), given up
 * after six ends in a minute, and stopped with serve after the command it runs, if any.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../host/package-root.js';

const RESTARTS_PER_MINUTE = 5;

export class WarmKeeper {
  private child: ChildProcess | undefined;
  private ends: number[] = [];
  private closing = false;

  constructor(private readonly o: { readonly stateDir: string; readonly log: (line: string) => void; readonly debug: boolean }) {}

  start(): void {
    if (this.closing) return;
    const entry = join(packageRoot(), 'bin', 'svirt-warm.js');
    const child = spawn(process.execPath, [entry, this.o.stateDir, String(process.pid), ...(this.o.debug ? ['--debug'] : [])], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    this.child = child;
    child.on('error', (err) => this.o.log(`warm worker: ${err.message}`));
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      if (this.closing) return;
      const now = Date.now();
      this.ends = [...this.ends.filter((t) => now - t < 60_000), now];
      if (this.ends.length > RESTARTS_PER_MINUTE) {
        this.o.log(`warm worker: ended ${this.ends.length} times in a minute; CLI commands run in their own process`);
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
