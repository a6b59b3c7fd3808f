import type { Socket } from 'node:net';

/**
 * Resolves with `s` once it connects; within `timeoutMs`, or `s` is destroyed and the promise
 * rejects with `timedOut()`. A connect error rejects with `failed(err)` (the error as is by
 * default). One deadline for svirt's connections: QMP, the migration stream, another serve.
 */
export function connectWithin(
  s: Socket,
  timeoutMs: number,
  timedOut: () => Error,
  failed: (err: Error) => Error = (err) => err,
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      s.destroy();
      reject(timedOut());
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(failed(err));
    });
  });
}
