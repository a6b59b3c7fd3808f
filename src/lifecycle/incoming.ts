/** A start from a saved state (restore): QEMU reads it from an inherited fd, watched over QMP. */
import { readFileSync } from 'node:fs';
import { SvirtError } from '../errors.js';
import type { FileHandle } from '../host/file-handle.js';
import { logTail, qemuLastWords } from '../qemu/launcher.js';
import type { QmpClient } from '../qemu/qmp-client.js';
import type { GuestResource } from '../security/driver.js';

/** Progress of a long transfer: bytes done of total. */
export type Progress = (done: number, total: number) => void;

export interface Incoming {
  /** An fd for QEMU to read the state from, positioned after the header. */
  readonly fd: number;
  readonly path: string;
  /** The file itself, as restore opened and checked it. */
  readonly handle: FileHandle;
  /** Reports how far QEMU has read the state file (its offset in the shared file description). */
  readonly progress?: Progress;
  readonly size?: number;
}

/** A start as a live migration's destination (src/lifecycle/migrate/destination.ts). */
export interface IncomingMigration {
  /** Resources opened for QEMU now but labelled only at the handover (the shared images). */
  readonly labelLater: (r: GuestResource) => boolean;
  /** Of those, the images QEMU gets no fd for at start: a placeholder until Finish attaches them (migrate/attach-later.ts). */
  readonly attachLater?: (r: GuestResource) => boolean;
}

/** Waits until QEMU has loaded the incoming state, then lets the guest run unless it stays paused. */
export async function finishIncoming(
  q: QmpClient,
  paused: boolean,
  logPath: string,
  incoming: Incoming,
  pid: number,
  qemuFd: number,
): Promise<void> {
  for (;;) {
    if (incoming.progress && incoming.size) incoming.progress(readOffset(pid, qemuFd), incoming.size);
    const st = (await q.execute('query-migrate').catch((err: unknown) => {
      // QEMU exits when the stream does not fit the machine: its log says why.
      const why = qemuLastWords(logTail(logPath));
      throw new SvirtError('SVIRT_ERR_QEMU_EXITED', `loading the saved state failed: ${why || String(err)}`, { cause: err });
    })) as { status?: string; 'error-desc'?: string };
    if (st.status === 'completed') break;
    if (st.status === 'failed' || st.status === 'cancelled') {
      throw new SvirtError('SVIRT_ERR_QEMU_START', `loading the saved state failed: ${st['error-desc'] ?? st.status}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  if (!paused) await q.execute('cont');
}

/** The file offset of QEMU's fd N (/proc/PID/fdinfo/N), 0 when it cannot be read. */
function readOffset(pid: number, fd: number): number {
  try {
    return Number(/^pos:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0; // QEMU closed it (done) or exited: the caller learns which from QMP
  }
}
