/**
 * qemu-img over fds svirt opened itself: every image is given as `/proc/self/fd/N` of a file
 * svirt holds (created O_EXCL|O_NOFOLLOW in the pool's directory, or opened without a symlink
 * on the way; not `/dev/fd/N`: a host without udev, such as the lab's VMs, has no /dev/fd), always with its declared format, and a qcow2 image as a `json:` description with
 * `"backing": null`, so a backing file named in a header (an uploaded image can name any) is
 * never opened. qemu-img never probes a format and never resolves a path here.
 */
import { spawn } from 'node:child_process';
import { SvirtError } from '../errors.js';
import type { VolumeFormat } from './storage-xml.js';

export const QEMU_IMG = '/usr/bin/qemu-img';
const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };
/** A clone of a large image takes a while; a hung qemu-img does not hold a call forever. */
const TIMEOUT_MS = 30 * 60_000;

/** The fd's image as qemu-img should open it (fd numbers inside qemu-img: 3, 4, ...). */
export function imageArg(slot: number, format: VolumeFormat): string {
  const file = { driver: 'file', filename: `/proc/self/fd/${slot}` };
  return `json:${JSON.stringify(format === 'qcow2' ? { driver: 'qcow2', backing: null, file } : { driver: 'raw', file })}`;
}

/** Runs qemu-img with `fds` as its fds 3, 4, ...; rejects with its stderr's last lines. */
export function qemuImg(args: readonly string[], fds: readonly number[], what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(QEMU_IMG, args, { env: ENV, stdio: ['ignore', 'ignore', 'pipe', ...fds] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 16_384) stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new SvirtError('SVIRT_ERR_HOST', `cannot ${what}: ${QEMU_IMG}: ${err.message}`, { cause: err }));
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      if (code === 0) return resolve();
      const tail = stderr.trim().split('\n').slice(-3).join('; ');
      reject(
        new SvirtError('SVIRT_ERR_HOST', `cannot ${what}: qemu-img ${args[0] ?? ''}: ${tail || `exit ${code ?? sig}`}`, {
          details: { args, status: code, signal: sig },
        }),
      );
    });
  });
}

/** Writes a new qcow2 image of `capacity` bytes into the (empty) file open as `fd`. */
export function createQcow2(fd: number, capacity: number, lazyRefcounts: boolean, what: string): Promise<void> {
  const opts = ['-o', `lazy_refcounts=${lazyRefcounts ? 'on' : 'off'}`];
  return qemuImg(['create', '-q', '-f', 'qcow2', ...opts, '/proc/self/fd/3', String(capacity)], [fd], what);
}

/** Copies the guest-visible content of `src` into `dst` (already created with the same capacity). */
export function convertInto(src: { fd: number; format: VolumeFormat }, dst: { fd: number; format: VolumeFormat }, what: string) {
  return qemuImg(['convert', '-n', '-O', dst.format, imageArg(3, src.format), imageArg(4, dst.format)], [src.fd, dst.fd], what);
}

/** Grows (or, with shrink, shrinks) a qcow2 image's virtual size. */
export function resizeQcow2(fd: number, capacity: number, shrink: boolean, what: string): Promise<void> {
  return qemuImg(['resize', ...(shrink ? ['--shrink'] : []), imageArg(3, 'qcow2'), String(capacity)], [fd], what);
}
