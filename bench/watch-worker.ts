/**
 * Worker thread of ProcWatcher: polls /proc/PID/stat every ~0.25 ms, off the main event
 * loop, so "QEMU is gone" is seen even while the main thread runs svirt's synchronous
 * cleanup. Replies with the absolute time (timeOrigin + now) the process was first seen gone.
 */
import { parentPort } from 'node:worker_threads';
import { isAlive } from '../src/host/proc.js';

interface Request {
  readonly id: number;
  readonly pid: number;
  readonly startTime: number;
  readonly timeoutMs: number;
}

const nap = new Int32Array(new SharedArrayBuffer(4));
const port = parentPort;
if (port === null) throw new Error('watch-worker must run as a worker thread');
port.on('message', (req: Request) => {
  const t0 = performance.now();
  let goneAt: number | undefined;
  while (performance.now() - t0 < req.timeoutMs) {
    if (!isAlive({ pid: req.pid, startTime: req.startTime })) {
      goneAt = performance.timeOrigin + performance.now();
      break;
    }
    Atomics.wait(nap, 0, 0, 0.25);
  }
  port.postMessage({ id: req.id, goneAt });
});
