/**
 * A volume's bytes over libvirt's stream protocol: StorageVolUpload (the client's data is
 * written at offset..offset+length) and StorageVolDownload (the file's bytes are sent), on the
 * fd src/lifecycle/storage.ts opened for exactly that file. Bounded: a download reads only while
 * the client has less than OUT_BACKLOG unread; an upload may not write past the volume's size
 * (raw) or far past it (qcow2 metadata), nor past the length the client declared.
 */
import { closeSync, fsyncSync, readSync, writeSync } from 'node:fs';
import { RemoteError, VirErr, VirFrom } from './errors.js';
import type { StreamHandler, StreamOut } from './procedures/types.js';

const CHUNK = 256 * 1024 - 1024;
const OUT_BACKLOG = 1024 * 1024;
const WAIT_MS = 5;

function failed(message: string): RemoteError {
  return new RemoteError(VirErr.OPERATION_FAILED, VirFrom.STREAMS, message);
}

/** Sends `length` bytes (0: to the end) of the file from `offset`, then the end of the stream. */
export function downloadStream(fd: number, offset: number, length: number, out: StreamOut): StreamHandler {
  let pos = offset;
  const end = length === 0 ? Number.POSITIVE_INFINITY : offset + length;
  let done = false;
  const buf = Buffer.alloc(CHUNK);
  const stop = (): void => {
    if (done) return;
    done = true;
    closeSync(fd);
  };
  const pump = (): void => {
    if (done) return;
    try {
      for (let i = 0; i < 8 && out.backlog < OUT_BACKLOG; i++) {
        const want = Math.min(CHUNK, end - pos);
        const n = want <= 0 ? 0 : readSync(fd, buf, 0, want, pos);
        if (n === 0) {
          // libvirt's end of data: an empty message; the client's finish then ends the stream.
          stop();
          out.data(Buffer.alloc(0));
          return;
        }
        pos += n;
        out.data(Buffer.from(buf.subarray(0, n)));
      }
    } catch (err) {
      stop();
      out.error(failed(`cannot read the volume: ${err instanceof Error ? err.message : String(err)}`));
      return;
    }
    setTimeout(pump, out.backlog < OUT_BACKLOG ? 0 : WAIT_MS);
  };
  // The first data goes after the call's reply (which the connection writes when run returns).
  setImmediate(pump);
  return { data: () => undefined, finish: stop, abort: stop };
}

/**
 * Writes what the client sends at `offset` on; `limit` is the first byte it may not write
 * (offset + length, or what the volume may hold). The finish syncs the file.
 */
export function uploadStream(fd: number, offset: number, limit: number, out: StreamOut): StreamHandler {
  let pos = offset;
  let done = false;
  const stop = (): void => {
    if (done) return;
    done = true;
    closeSync(fd);
  };
  return {
    data: (chunk) => {
      if (done) return;
      if (pos + chunk.length > limit) {
        stop();
        out.error(failed(`upload past the end of the volume or of the declared length (${limit - offset} bytes)`));
        return;
      }
      try {
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off, pos + off);
        pos += chunk.length;
      } catch (err) {
        stop();
        out.error(failed(`cannot write the volume: ${err instanceof Error ? err.message : String(err)}`));
      }
    },
    finish: () => {
      if (done) return;
      fsyncSync(fd);
      stop();
    },
    abort: stop,
  };
}
