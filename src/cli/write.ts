import { writeSync } from 'node:fs';

/**
 * Writes `text` to fd 1 (or `fd`) directly: `process.stdout` would load Node's stream machinery,
 * ~4 ms of a verb's start (issue 17). A pipe that another program left non-blocking may answer
 * EAGAIN: the write waits for it (5 ms steps, 10 s in all) rather than lose output.
 */
export function writeOut(text: string, fd = 1): void {
  let buf = Buffer.from(text);
  const deadline = Date.now() + 10_000;
  while (buf.length > 0) {
    try {
      buf = buf.subarray(writeSync(fd, buf));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || Date.now() > deadline) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}
