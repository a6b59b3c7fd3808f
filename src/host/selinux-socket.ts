import { writeFileSync } from 'node:fs';

/**
 * Runs fn (which must create its socket synchronously, in this thread) with the thread's
 * socket-create label set, as libvirt's SetSocketLabel does. Under an enforcing SELinux
 * kernel a socket takes its creator's context otherwise: QEMU at the guest's MCS pair could
 * neither accept on svirt's listening socket nor write to svirt's connection.
 */
export function withSocketLabel<T>(label: string | undefined, fn: () => T): T {
  if (label === undefined) return fn();
  writeFileSync('/proc/thread-self/attr/sockcreate', label);
  try {
    return fn();
  } finally {
    // An empty write restores the default (the creator's own context) for later sockets.
    writeFileSync('/proc/thread-self/attr/sockcreate', '');
  }
}
