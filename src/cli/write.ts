import { writeSync } from 'node:fs';

/** Output held back by holdOutput(), in order, with its fd. */
let held: { fd: number; text: string }[] | undefined;

/**
 * Writes `text` to fd 1 (or `fd`) directly: `process.stdout` would load Node's stream machinery,
 * ~4 ms of a verb's start (issue 17). A pipe that another program left non-blocking may answer
 * EAGAIN: the write waits for it (5 ms steps, 10 s in all) rather than lose output.
 */
export function writeOut(text: string, fd = 1): void {
  if (held) {
    held.push({ fd, text });
    return;
  }
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

/**
 * Holds everything writeOut is given until `release` writes it, or `drop` forgets it: the read
 * bundle's verbs print only once they are done, so one that moves to the full bundle prints once.
 */
export function holdOutput(): { release(): void; drop(): void } {
  held = [];
  const take = (): { fd: number; text: string }[] => {
    const out = held ?? [];
    held = undefined;
    return out;
  };
  return {
    release: () => {
      for (const o of take()) writeOut(o.text, o.fd);
    },
    drop: () => void take(),
  };
}
