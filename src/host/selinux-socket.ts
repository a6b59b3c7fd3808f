import { closeSync, constants, openSync, writeSync } from 'node:fs';

const SOCKCREATE = '/proc/thread-self/attr/sockcreate';

/**
 * One write to a /proc attr file, opened O_WRONLY alone: writeFileSync's O_CREAT|O_TRUNC
 * makes SELinux check `create` and `add_name` on the process's own attr dir, which the
 * manager's confined domain (virtd_t) is not granted (docs/confinement.md).
 */
function writeAttr(value: string): void {
  const fd = openSync(SOCKCREATE, constants.O_WRONLY);
  try {
    writeSync(fd, value);
  } finally {
    closeSync(fd);
  }
}

/**
 * Runs fn (which must create its socket synchronously, in this thread) with the thread's
 * socket-create label set, as libvirt's SetSocketLabel does. Under an enforcing SELinux
 * kernel a socket takes its creator's context otherwise: QEMU at the guest's MCS pair could
 * neither accept on svirt's listening socket nor write to svirt's connection.
 */
export function withSocketLabel<T>(label: string | undefined, fn: () => T): T {
  if (label === undefined) return fn();
  writeAttr(label);
  try {
    return fn();
  } finally {
    // A newline (as an empty value) restores the default, the creator's own context, for
    // later sockets; a zero-length write might never reach the kernel.
    writeAttr('\n');
  }
}
