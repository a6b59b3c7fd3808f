import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

/**
 * A small system file (a firmware descriptor, a cache) read whole, or undefined when it is
 * missing, not a regular file (checked on the fd: a FIFO never blocks, O_NONBLOCK) or larger
 * than `max` bytes.
 */
export function readCapped(path: string, max: number): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch {
    return undefined; // missing or unreadable: the caller goes on without it
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > max) return undefined;
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off).toString('utf8');
  } finally {
    closeSync(fd);
  }
}
