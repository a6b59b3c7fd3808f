/** The warm worker's process.stdout and process.stderr (warm-worker.ts). */
import { writeSync } from 'node:fs';
import { Writable } from 'node:stream';
import { isatty } from 'node:tty';

/**
 * process.stdout and process.stderr write synchronously to whatever fds 1 and 2 are at that
 * moment. Node's own streams would not do for a process whose fds 1 and 2 change: on a TTY
 * they reopen the terminal and keep writing to it, so a warning of the next command would
 * reach the last caller's terminal. svirt writes through writeOut (cli/write.ts); this is for
 * the few warnings that use process.stderr.
 */
export function plainStdio(): void {
  for (const [name, fd] of [
    ['stdout', 1],
    ['stderr', 2],
  ] as const) {
    const stream = new Writable({
      write(chunk: Buffer, _enc, done): void {
        try {
          writeSync(fd, chunk);
          done();
        } catch (err) {
          done(err as Error);
        }
      },
    });
    stream.on('error', () => undefined); // a caller that closed its end: as a fresh process, it loses the line
    Object.defineProperty(stream, 'isTTY', { get: () => isatty(fd) });
    Object.defineProperty(stream, 'fd', { value: fd });
    Object.defineProperty(process, name, { configurable: true, enumerable: true, get: () => stream });
  }
}
