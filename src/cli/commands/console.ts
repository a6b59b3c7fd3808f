/**
 * `svirt console NAME [--devname ALIAS] [--force]`, as virsh console: the guest's pty on this
 * terminal (raw mode when stdin is one; a plain pipe otherwise, so scripts and tests can
 * drive it). `^]` (0x1d) leaves; so does SIGTERM (a `--force` session taking over).
 */
import { readSync, writeSync } from 'node:fs';
import { errnoOf } from '../../errors.js';
import { arg, type ParsedArgs } from '../args.js';
import { openHypervisor } from '../context.js';

const ESCAPE = 0x1d;
const POLL_MS = 15;

/** Writes all of `buf` to a non-blocking fd, waiting briefly when it is full (bounded). */
function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  for (let spins = 0; off < buf.length && spins < 2000;) {
    try {
      off += writeSync(fd, buf, off);
    } catch (err) {
      if (errnoOf(err) !== 'EAGAIN') throw err;
      spins++;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

export async function run(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const hv = await openHypervisor(args);
  const session = await hv.openConsole(name, args.options.get('devname'), args.flags.has('force'));
  const stdin = process.stdin;
  const raw = stdin.isTTY === true;
  process.stderr.write(`Connected to domain '${name}' (${session.alias}, ${session.path})\nEscape character is ^] (Ctrl + ])\n`);
  return await new Promise<number>((resolve) => {
    let done = false;
    const buf = Buffer.alloc(65536);
    const finish = (code: number): void => {
      if (done) return;
      done = true;
      clearInterval(timer);
      if (raw) stdin.setRawMode(false);
      stdin.destroy(); // a pipe still open would keep this process alive
      session.close();
      process.stderr.write('\n');
      resolve(code);
    };
    const timer = setInterval(() => {
      for (let i = 0; i < 16; i++) {
        let n: number;
        try {
          n = readSync(session.fd, buf);
        } catch (err) {
          if (errnoOf(err) === 'EAGAIN') return;
          finish(0); // EIO: QEMU closed the pty (the guest stopped)
          return;
        }
        if (n === 0) return;
        process.stdout.write(Buffer.from(buf.subarray(0, n)));
      }
    }, POLL_MS);
    if (raw) stdin.setRawMode(true);
    stdin.on('data', (chunk: Buffer) => {
      const at = chunk.indexOf(ESCAPE);
      const data = at < 0 ? chunk : chunk.subarray(0, at);
      try {
        if (data.length > 0) writeAll(session.fd, data);
      } catch {
        finish(0);
        return;
      }
      if (at >= 0) finish(0);
    });
    // a pipe that ends leaves the session open: output may still come; ^] or a signal ends it
    stdin.on('end', () => undefined);
    process.once('SIGTERM', () => finish(0));
    process.once('SIGINT', () => finish(0));
    process.once('SIGHUP', () => finish(0));
  });
}
