import { closeSync, openSync, readSync } from 'node:fs';
import { SvirtError } from '../errors.js';

/**
 * `n` bytes from the kernel's CSPRNG (/dev/urandom, the pool getrandom(2) draws from). node:crypto
 * gives the same bytes but costs ~4 ms to load, which a CLI verb that only needs a uuid or a MAC
 * should not pay (issue 17).
 */
export function randomBytes(n: number): Buffer {
  const buf = Buffer.alloc(n);
  const fd = openSync('/dev/urandom', 'r');
  try {
    for (let off = 0; off < n;) {
      const got = readSync(fd, buf, off, n - off, null);
      if (got <= 0) throw new SvirtError('SVIRT_ERR_INTERNAL', 'internal error: /dev/urandom gave no bytes');
      off += got;
    }
  } finally {
    closeSync(fd);
  }
  return buf;
}

/** A random (version 4, RFC 9562) UUID in lower case. */
export function randomUuid(): string {
  const b = randomBytes(16);
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
