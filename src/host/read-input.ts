/**
 * Reading a file a user named (a domain XML, a device XML) without ever waiting on it: opened
 * with O_NONBLOCK (a FIFO opens at once instead of waiting for a writer; a device node is
 * never read), its type checked on the opened fd, its size capped, and read from that fd.
 *
 * The calls on a named file are synchronous. Only CLI verbs read such files (a `svirt serve`
 * client sends its XML in the message, never a path), and a CLI verb has nothing else on its
 * event loop while it reads its input: the asynchronous calls made it wait just as long, with
 * no deadline either, and their first use started libuv's thread pool, four threads and ~2 ms
 * of a fresh `svirt define` (issue 17). No call here can wait on a writer or a device: the
 * open is non-blocking and nothing but a regular file is read. Standard input is a pipe or a
 * terminal that may take its time, so it is still read asynchronously.
 *
 * Symlinks: a path given on the command line is followed by default, as `virsh define` and
 * `cat` follow it. The file is only data to parse, read with the rights of whoever named
 * it, so a link gives that caller nothing they could not read anyway. Paths that come from
 * somewhere else (a definition, another user) pass `followSymlinks: false`: the last
 * component is opened with O_NOFOLLOW and a link is refused.
 */
import { closeSync, constants, fstatSync, openSync, read, readSync, statSync, type Stats } from 'node:fs';
import { SvirtError, errnoOf } from '../errors.js';
import { describeKind, kindOf } from './file-handle.js';

/** The cap for a domain or device XML file (virsh reads at most 10 MiB of one: VSH_MAX_XML_FILE). */
export const XML_MAX_BYTES = 16 * 1024 * 1024;

export interface ReadInputOptions {
  /** Names the file in errors, e.g. `domain XML`. */
  readonly what?: string;
  /** Larger files are refused (default {@link XML_MAX_BYTES}). */
  readonly maxBytes?: number;
  /** Follow a symlink in the last component (default true; see the module comment). */
  readonly followSymlinks?: boolean;
}

/** The kind of a file, as an error message says it ("it is a FIFO"). */
function fileKind(st: Stats): string {
  return describeKind(kindOf(st));
}

/** `16 MiB`, `15.9 MiB`, `512 KiB`, `100 bytes`. */
export function formatBytes(n: number): string {
  const unit = (size: number, name: string): string => `${n % size === 0 ? String(n / size) : (n / size).toFixed(1)} ${name}`;
  if (n >= 1024 * 1024) return unit(1024 * 1024, 'MiB');
  if (n >= 1024) return unit(1024, 'KiB');
  return `${n} bytes`;
}

function cannot(path: string, why: string, details: Record<string, unknown>, cause?: unknown): SvirtError {
  return new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot read "${path}": ${why}`, {
    details: { path, ...details },
    ...(cause === undefined ? {} : { cause }),
  });
}

// Standard input's read, in the thread pool as fs/promises' are: node:fs/promises costs ~3 ms
// to load (issue 17).
const readFd = (fd: number, buf: Buffer): Promise<number> =>
  new Promise((resolve, reject) => read(fd, buf, 0, buf.length, null, (err, n) => (err ? reject(err) : resolve(n))));

/** Opens for reading without waiting: O_NONBLOCK, O_NOCTTY, and O_NOFOLLOW unless links are followed. */
function openNonBlocking(path: string, follow: boolean): number {
  const flags = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY | (follow ? 0 : constants.O_NOFOLLOW);
  try {
    return openSync(path, flags);
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === 'ELOOP' && !follow) throw cannot(path, 'it is a symbolic link', { errno }, err);
    // A UNIX socket cannot be opened (ENXIO): say what it is rather than the errno.
    if (errno === 'ENXIO') {
      const st = statSync(path, { throwIfNoEntry: false });
      if (st) throw cannot(path, `it is ${fileKind(st)}, not a regular file`, { errno, kind: fileKind(st) }, err);
    }
    throw cannot(path, errno ?? String(err), { errno }, err);
  }
}

/**
 * The whole content of the regular file at `path`, at most `maxBytes`. Anything else (a
 * FIFO, a device, a directory, a socket) is refused before a byte is read, naming its kind;
 * a file over the cap is refused naming the cap. `-` reads standard input (a pipe is fine
 * there, with the same cap).
 */
export async function readInput(path: string, opts: ReadInputOptions = {}): Promise<Buffer> {
  const max = opts.maxBytes ?? XML_MAX_BYTES;
  const what = opts.what ?? 'input';
  if (path === '-') return readStdin(max, what);
  const fd = openNonBlocking(path, opts.followSymlinks ?? true);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      throw cannot(path, `it is ${fileKind(st)}, not a regular file`, { kind: fileKind(st) });
    }
    if (st.size > max) throw tooLarge(path, what, max);
    // The size is a hint only (procfs says 0, a file may grow): read until EOF, one byte past the cap at most.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const want = Math.min(Math.max(st.size - total, 64 * 1024), max + 1 - total);
      const buf = Buffer.allocUnsafe(want);
      const bytesRead = readSync(fd, buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      chunks.push(buf.subarray(0, bytesRead));
      total += bytesRead;
      if (total > max) throw tooLarge(path, what, max);
    }
    return Buffer.concat(chunks, total);
  } catch (err) {
    if (err instanceof SvirtError) throw err;
    throw cannot(path, errnoOf(err) ?? String(err), { errno: errnoOf(err) }, err);
  } finally {
    closeSync(fd);
  }
}

/** {@link readInput} decoded as UTF-8. */
export async function readInputText(path: string, opts: ReadInputOptions = {}): Promise<string> {
  return (await readInput(path, opts)).toString('utf8');
}

function tooLarge(path: string, what: string, max: number): SvirtError {
  return cannot(path, `it is larger than ${formatBytes(max)}, the limit for ${what}`, { maxBytes: max });
}

/**
 * Standard input to its end, read from fd 0 itself rather than through `process.stdin`: Node's
 * stream would be this process's one reader of fd 0, and serve's warm worker lends fd 0 to each
 * command in turn (src/cli/warm-worker.ts), where a stream ended by the first caller would hand
 * the next one nothing. A pipe another program left non-blocking answers EAGAIN: the read waits
 * for it (10 ms steps), as long as standard input takes.
 */
async function readStdin(max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const buf = Buffer.allocUnsafe(64 * 1024);
    let n: number;
    try {
      n = await readFd(0, buf);
    } catch (err) {
      if (errnoOf(err) === 'EAGAIN') {
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      throw cannot('-', errnoOf(err) ?? String(err), { errno: errnoOf(err) }, err);
    }
    if (n === 0) break;
    total += n;
    if (total > max)
      throw cannot('-', `standard input is larger than ${formatBytes(max)}, the limit for ${what}`, { maxBytes: max });
    chunks.push(buf.subarray(0, n));
  }
  return Buffer.concat(chunks, total);
}

/** What a path is allowed to be: a regular file, or also a block device (a disk). */
export type InputKind = 'regular' | 'regular-or-block';

/**
 * Refuses a path that exists and is not of the `allowed` kind, without opening it (a stat:
 * no device is opened, no FIFO waited on). A path that does not exist passes: whoever uses it
 * reports that with its own words. `what` names the role in the error (`save file`, `disk vda`).
 *
 * This is a check before use, not a guarantee: the path can change before it is opened, so
 * the open itself must still be non-blocking where it matters.
 */
export function checkInputKind(path: string, allowed: InputKind, what: string): void {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === 'ENOENT' || errno === 'ENOTDIR') return;
    throw new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot use "${path}" as ${what}: ${errno ?? String(err)}`, {
      details: { path, errno },
      cause: err,
    });
  }
  if (st.isFile() || (allowed === 'regular-or-block' && st.isBlockDevice())) return;
  const want = allowed === 'regular' ? 'a regular file' : 'a regular file or a block device';
  throw new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot use "${path}" as ${what}: it is ${fileKind(st)}, not ${want}`, {
    details: { path, kind: fileKind(st) },
  });
}
