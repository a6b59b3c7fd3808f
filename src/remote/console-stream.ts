/**
 * A guest's console over libvirt's stream protocol (DomainOpenConsole: virsh console,
 * virt-install's autoconsole, virt-manager's serial console). The pty is the one `svirt
 * console` opens (console-session.ts: the relayed pty, one session at a time); serve reads it
 * every few ms as the CLI does and writes what the client sends.
 *
 * Bounded both ways: nothing is read from the pty while the client leaves OUT_BACKLOG bytes
 * unread (the guest's monitor drops output nobody reads, as QEMU's pty backend does), and
 * input waiting for the pty is capped at IN_BACKLOG; past it the stream ends with an error.
 */
import { readSync, writeSync } from 'node:fs';
import { errnoOf } from '../errors.js';
import type { ConsoleSession } from '../lifecycle/console-session.js';
import { RemoteError, VirErr, VirFrom } from './errors.js';
import type { StreamHandler, StreamOut } from './procedures/types.js';

const POLL_MS = 15;
const READ_MAX = 64 * 1024;
const OUT_BACKLOG = 1024 * 1024;
const IN_BACKLOG = 1024 * 1024;

export function consoleStream(session: ConsoleSession, out: StreamOut): StreamHandler & { stop(why: string): void } {
  const buf = Buffer.alloc(READ_MAX);
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let done = false;
  const end = (): void => {
    if (done) return;
    done = true;
    clearInterval(timer);
    session.close();
  };
  const flush = (): void => {
    while (pending.length > 0) {
      const head = pending[0] as Buffer;
      let n: number;
      try {
        n = writeSync(session.fd, head);
      } catch (err) {
        if (errnoOf(err) === 'EAGAIN') return;
        throw err;
      }
      pendingBytes -= n;
      if (n === head.length) pending.shift();
      else pending[0] = head.subarray(n);
    }
  };
  const tick = (): void => {
    try {
      flush();
      for (let i = 0; i < 16 && out.backlog < OUT_BACKLOG; i++) {
        let n: number;
        try {
          n = readSync(session.fd, buf);
        } catch (err) {
          if (errnoOf(err) === 'EAGAIN') break;
          throw err;
        }
        if (n === 0) break;
        out.data(Buffer.from(buf.subarray(0, n)));
      }
    } catch {
      // EIO: the monitor closed the pty (the guest stopped): the stream ends, as libvirtd's does
      end();
      out.end();
    }
  };
  const timer = setInterval(tick, POLL_MS);
  return {
    data: (chunk) => {
      if (done) return;
      if (pendingBytes + chunk.length > IN_BACKLOG) {
        end();
        out.error(new RemoteError(VirErr.OPERATION_FAILED, VirFrom.STREAMS, 'console input faster than the guest reads it'));
        return;
      }
      pending.push(chunk);
      pendingBytes += chunk.length;
    },
    finish: end,
    abort: () => {
      pending = [];
      end();
    },
    stop: (why) => {
      end();
      out.error(new RemoteError(VirErr.OPERATION_FAILED, VirFrom.STREAMS, why));
    },
  };
}
