/**
 * `<serial type='pipe'>` with the FIFOs svirt opened, as fds. QEMU's pipe backend opens
 * PATH.in and PATH.out O_RDWR when both exist, else PATH; libvirt hands QEMU the path.
 * svirt opens the FIFOs itself (no symlink on the way, checked to be FIFOs, labelled) and:
 *
 * - one FIFO: `-chardev pipe,path=/dev/fdset/N` with its O_RDWR fd in set N (QEMU tries
 *   `/dev/fdset/N.in` and `.out`, which name no fdset, and falls back to set N);
 * - PATH.in and PATH.out: QEMU 7.2's command line cannot give one chardev an input and an
 *   output fd (`-chardev file,input-path=` came with QEMU 8.1), but QMP's `file` backend
 *   can. The chardev starts as `null`, QEMU starts paused, and `chardev-change` gives it the
 *   two fdsets before the guest runs (hw/char/serial.c follows a backend change).
 *
 * Each of the pair's sets also holds an O_RDWR fd of that FIFO, which QEMU keeps as its own
 * O_RDWR open would be kept: no EOF when a writer leaves PATH.in, no EPIPE while nobody
 * reads PATH.out.
 */
import type { QmpClient } from './qmp-client.js';

/** One fd QEMU inherits, in an fdset. */
export interface PipeFd {
  readonly fd: number;
  readonly set: number;
  readonly path: string;
}

/** What QEMU gets for one pipe chardev. */
export interface PipeFds {
  readonly fds: readonly PipeFd[];
  /** One FIFO: the fdset of its O_RDWR fd. */
  readonly both?: number;
  /** PATH.in (read by QEMU: an O_RDONLY fd) and PATH.out (written: O_WRONLY). */
  readonly input?: number;
  readonly output?: number;
}

/** A QMP `chardev-change` to make once QEMU runs paused. */
export interface ChardevChange {
  readonly id: string;
  readonly backend: Readonly<Record<string, unknown>>;
}

/** The `-chardev` backend text of a pipe chardev. */
export function pipeBackend(id: string, p: PipeFds): string {
  return p.both !== undefined ? `pipe,id=${id},path=/dev/fdset/${p.both}` : `null,id=${id}`;
}

/** The change that wires PATH.in and PATH.out, or undefined for a single FIFO. */
export function pipeChange(id: string, p: PipeFds): ChardevChange | undefined {
  if (p.input === undefined || p.output === undefined) return undefined;
  // append: without it QEMU would ftruncate its output, which fails on a FIFO.
  const data = { in: `/dev/fdset/${p.input}`, out: `/dev/fdset/${p.output}`, append: true };
  return { id, backend: { type: 'file', data } };
}

/**
 * Makes the changes on a QEMU started paused for them, then lets the guest run unless it was
 * to stay paused (or an incoming state will decide).
 */
export async function applyChardevChanges(qmp: QmpClient, changes: readonly ChardevChange[], resume: boolean): Promise<void> {
  for (const c of changes) await qmp.execute('chardev-change', { id: c.id, backend: c.backend });
  if (changes.length > 0 && resume) await qmp.execute('cont');
}
