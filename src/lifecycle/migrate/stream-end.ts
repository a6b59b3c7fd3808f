/**
 * QEMU's end of the migration stream. Without socket labels it is svirt's TCP connection
 * itself, handed over as is. Under SELinux a socket carries its creator's context, and QEMU
 * (svirt_t at the guest's pair) is not let receive svirt's (virtd_t) over SCM_RIGHTS: the
 * kernel drops the fd ("No file descriptor supplied"). libvirt sets the socket-create label
 * before making the socket; Node makes a TCP socket's fd later, on a tick of its own, so
 * here QEMU gets one end of a socketpair made under the guest's socket label (as the TPM and
 * passt sockets are) and svirt relays it to and from the TCP connection.
 */
import { closeSync } from 'node:fs';
import { Socket } from 'node:net';
import { socketpair } from '../../host/native.js';
import { withSocketLabel } from '../../host/selinux-socket.js';
import { socketFd } from './transfer.js';

export interface StreamEnd {
  /** The fd to give QEMU (getfd). */
  readonly fd: number;
  /** After getfd: svirt's copy goes (the relay, if any, runs on). */
  handedOver(): void;
  /** A failure before QEMU has it: everything goes. */
  abort(): void;
}

/** `label`: the guest's socket label (SecurityManager.socketLabels().listen), if its stack has one. */
export function streamEnd(tcp: Socket, label: string | undefined): StreamEnd {
  if (label === undefined && process.env['SVIRT_TEST_MIGRATE_RELAY'] !== '1') {
    return { fd: socketFd(tcp), handedOver: () => tcp.destroy(), abort: () => tcp.destroy() };
  }
  const [ours, theirs] = withSocketLabel(label, () => socketpair());
  const local = new Socket({ fd: ours, readable: true, writable: true });
  // Each end's EOF is passed on (pipe ends the other's writing side once its data is out).
  local.pipe(tcp);
  tcp.pipe(local);
  const fail = (): void => {
    local.destroy();
    tcp.destroy();
  };
  local.on('error', fail);
  tcp.on('error', fail);
  local.on('close', () => tcp.end());
  tcp.on('close', () => local.end());
  let theirsOpen = true;
  const closeTheirs = (): void => {
    if (theirsOpen) closeSync(theirs);
    theirsOpen = false;
  };
  return {
    fd: theirs,
    handedOver: closeTheirs,
    abort: () => {
      closeTheirs();
      fail();
    },
  };
}
