/**
 * Where the kernel's denials are: the kernel log (/dev/kmsg: SELinux and AppArmor print their
 * records there when no audit daemon takes them) and auditd's log (/var/log/audit/audit.log).
 * Both are read without blocking the event loop and within bounds: the kernel log's ring
 * until it has nothing more (EAGAIN), at most MAX_RECORDS records; audit.log's last
 * AUDIT_LOG_TAIL bytes, from an fd opened without following a link and checked to be a
 * regular file.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { attribute, dedupe, parseDenial, type GuestDenial, type KernelDenial, type LabelHold } from './kernel-denials.js';

export const KMSG = '/dev/kmsg';
export const AUDIT_LOG = '/var/log/audit/audit.log';
/** How much of audit.log's end is read (auditd rotates at 8 MiB by default). */
export const AUDIT_LOG_TAIL = 64 * 1024 * 1024;
/** The kernel log's ring holds a few thousand records; this bounds a ring made huge by `log_buf_len`. */
export const MAX_RECORDS = 1_000_000;

/** What one source gave: its denials, or why it could not be read. */
export interface SourceResult {
  readonly source: string;
  readonly denials: KernelDenial[];
  readonly error?: string;
}

function errnoText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ?? (err instanceof Error ? err.message : String(err));
}

/** The denials in the kernel log's ring (needs CAP_SYSLOG where `dmesg_restrict` is set). */
export async function readKernelLog(path = KMSG): Promise<SourceResult> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (err) {
    return { source: path, denials: [], error: errnoText(err) };
  }
  const denials: KernelDenial[] = [];
  // One read returns one record; a record is at most ~8 KiB (the kernel's limit for a line with its dictionary).
  const buf = Buffer.alloc(16 * 1024);
  try {
    const st = await fh.stat();
    if (!st.isCharacterDevice()) return { source: path, denials: [], error: 'not the kernel log device' };
    for (let n = 0; n < MAX_RECORDS; n++) {
      let got: number;
      try {
        ({ bytesRead: got } = await fh.read(buf, 0, buf.length, null));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') continue; // records were overwritten under us: go on from the oldest left
        if (code === 'EAGAIN') break; // the end of the ring
        throw err;
      }
      if (got === 0) break;
      // `PRIO,SEQ,USEC,FLAGS;MESSAGE\n` then dictionary lines starting with a space.
      const rec = buf.toString('utf8', 0, got);
      const semi = rec.indexOf(';');
      const message = rec.slice(semi + 1).split('\n', 1)[0] ?? '';
      if (!message.includes('audit(')) continue;
      const d = parseDenial(message);
      if (d) denials.push(d);
    }
  } catch (err) {
    return { source: path, denials, error: errnoText(err) };
  } finally {
    await fh.close();
  }
  return { source: path, denials };
}

/** The denials in the end of auditd's log. A missing log (no auditd) is said, not an error. */
export async function readAuditLog(path = AUDIT_LOG, tail = AUDIT_LOG_TAIL): Promise<SourceResult> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW | constants.O_NOCTTY);
  } catch (err) {
    return { source: path, denials: [], error: errnoText(err) };
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { source: path, denials: [], error: 'not a regular file' };
    const start = Math.max(0, st.size - tail);
    const buf = Buffer.alloc(Math.min(st.size, tail));
    let have = 0;
    while (have < buf.length) {
      const { bytesRead } = await fh.read(buf, have, buf.length - have, start + have);
      if (bytesRead === 0) break;
      have += bytesRead;
    }
    let lines = buf.toString('utf8', 0, have).split('\n');
    if (start > 0) lines = lines.slice(1); // the first line was cut
    const denials: KernelDenial[] = [];
    for (const l of lines) {
      if (!l.includes('type=AVC') && !l.includes('type=1400') && !l.includes('type=1107')) continue;
      const d = parseDenial(l);
      if (d) denials.push(d);
    }
    return { source: path, denials };
  } catch (err) {
    return { source: path, denials: [], error: errnoText(err) };
  } finally {
    await fh.close();
  }
}

/** The denials of both sources attributed to guests, and which sources were (not) read. */
export interface GuestDenials {
  readonly found: GuestDenial[];
  readonly read: readonly string[];
  /** Sources that could not be read, with why; a missing default audit.log (no auditd) is not one. */
  readonly unread: readonly { source: string; error: string }[];
}

/** Reads the kernel log and audit.log (`auditLog` when given) and attributes their denials to `holds`. */
export async function guestDenials(holds: readonly LabelHold[], auditLog?: string): Promise<GuestDenials> {
  const sources = await Promise.all([readKernelLog(), readAuditLog(auditLog)]);
  const read = sources.filter((s) => s.error === undefined);
  const unread = sources
    .filter((s, i) => s.error !== undefined && !(i === 1 && auditLog === undefined && s.error === 'ENOENT'))
    .map((s) => ({ source: s.source, error: s.error ?? '?' }));
  return {
    found: attribute(dedupe(read.flatMap((s) => s.denials)), holds),
    read: read.map((s) => s.source),
    unread,
  };
}
