import { Worker } from 'node:worker_threads';
import type { ProcessIdentity } from '../src/host/proc.js';

/** Absolute time in ms (comparable across threads): performance.timeOrigin + performance.now(). */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Watches processes from a worker thread; `watch` resolves with the absolute time the process went. */
export class ProcWatcher {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly waiting = new Map<number, (goneAt: number | undefined) => void>();

  constructor() {
    this.worker = new Worker(new URL('./watch-worker.js', import.meta.url));
    this.worker.on('message', (m: { id: number; goneAt?: number }) => {
      this.waiting.get(m.id)?.(m.goneAt);
      this.waiting.delete(m.id);
    });
  }

  /** Starts watching now; the promise gives when the process was first seen gone (undefined on timeout). */
  watch(id: ProcessIdentity, timeoutMs = 30_000): Promise<number | undefined> {
    const reqId = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(reqId, resolve);
      this.worker.postMessage({ id: reqId, pid: id.pid, startTime: id.startTime, timeoutMs });
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
