/**
 * `svirt screenshot NAME FILE [--screen N]`: QMP screendump into an unnamed file svirt makes
 * in the guest's runtime dir (O_TMPFILE) and hands QEMU as an fd (add-fd); svirt reads it back
 * (size-capped), checks it is a PNG (converting QEMU's PPM when it has no PNG), and writes
 * FILE itself, created O_EXCL|O_NOFOLLOW. QEMU never opens a path of the caller's.
 */
import { closeSync, constants, fstatSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { SvirtError, errnoOf } from '../errors.js';
import { QmpCommandError } from '../qemu/qmp-client.js';
import { pngSize, ppmToPng } from '../qemu/png.js';
import type { LifecycleEnv } from './env.js';
import { requireRunning, type Guest } from './guest.js';

/** Linux's O_TMPFILE (with O_DIRECTORY), which node:fs does not name. */
const O_TMPFILE = 0o20200000;
/** The largest picture svirt reads back (a 4K RGB PPM is 25 MiB). */
const MAX_BYTES = 64 * 1024 * 1024;

function readAll(fd: number): Buffer {
  const size = fstatSync(fd).size;
  if (size > MAX_BYTES) throw new SvirtError('SVIRT_ERR_QMP', `the screendump is ${size} bytes, more than ${MAX_BYTES}`);
  const buf = Buffer.alloc(size);
  let off = 0;
  while (off < size) {
    const n = readSync(fd, buf, off, size - off, off);
    if (n === 0) break;
    off += n;
  }
  return buf.subarray(0, off);
}

/**
 * The display's picture as PNG bytes (QMP screendump into an O_TMPFILE svirt made in the
 * guest's runtime dir, handed to QEMU as an fd): what `screenshot` writes and the
 * DomainScreenshot stream sends.
 */
export async function screendump(
  env: LifecycleEnv,
  guest: Guest,
  screen: number,
): Promise<{ png: Buffer; width: number; height: number }> {
  const rec = requireRunning(guest);
  if ((guest.def.videos?.length ?? 0) === 0) {
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${guest.def.name}' has no video device to take a screenshot of`);
  }
  const tmp = openSync(rec.runtimeDir, O_TMPFILE | constants.O_RDWR, 0o600);
  try {
    const forQemu = openSync(`/proc/self/fd/${tmp}`, constants.O_WRONLY);
    let data: Buffer;
    try {
      data = await env.withQmp(rec, async (q) => {
        const added = (await q.executeWithFds('add-fd', {}, [forQemu])) as { 'fdset-id': number };
        const set = added['fdset-id'];
        try {
          const args = { filename: `/dev/fdset/${set}`, ...(screen > 0 ? { head: screen } : {}) };
          try {
            await q.execute('screendump', { ...args, format: 'png' });
            return readAll(tmp);
          } catch (err) {
            // a QEMU without libpng writes only PPM
            if (!(err instanceof QmpCommandError) || !/png|format/i.test(err.message)) throw err;
            await q.execute('screendump', args);
            return ppmToPng(readAll(tmp));
          }
        } finally {
          await q.execute('remove-fd', { 'fdset-id': set });
        }
      });
    } finally {
      closeSync(forQemu);
    }
    const size = pngSize(data);
    if (!size) throw new SvirtError('SVIRT_ERR_QMP', `QEMU's screendump of '${guest.def.name}' is not a PNG`);
    return { png: data, ...size };
  } finally {
    closeSync(tmp);
  }
}

export async function screenshot(
  env: LifecycleEnv,
  guest: Guest,
  file: string,
  screen: number,
): Promise<{ width: number; height: number; bytes: number }> {
  requireRunning(guest);
  if ((guest.def.videos?.length ?? 0) === 0) {
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${guest.def.name}' has no video device to take a screenshot of`);
  }
  // the caller's file first: an existing file or a link there is refused before QEMU is asked
  let out: number;
  try {
    out = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  } catch (err) {
    throw new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot create "${file}": ${errnoOf(err) ?? String(err)}`, { cause: err });
  }
  let written = false;
  try {
    const { png, width, height } = await screendump(env, guest, screen);
    for (let off = 0; off < png.length;) off += writeSync(out, png, off);
    written = true;
    return { width, height, bytes: png.length };
  } finally {
    closeSync(out);
    if (!written) {
      try {
        // the empty file this call created (O_EXCL: nobody else's)
        unlinkSync(file);
      } catch {
        // already gone
      }
    }
  }
}
