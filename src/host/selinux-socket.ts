import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { lgetxattr } from './native.js';

/**
 * Under an enforcing SELinux kernel a client socket takes its creator's level, and the MCS
 * constraint then forbids QEMU (svirt_t at the guest's pair) to write to the accepted end.
 * As libvirt does, svirt creates its monitor connection with its own user:role:type at the
 * level of the guest's socket file. Returns undefined where SELinux does not run or the
 * socket has no label.
 */
export function socketCreateLabel(socketPath: string): string | undefined {
  if (!existsSync('/sys/fs/selinux/enforce')) return undefined;
  const file = lgetxattr(socketPath, 'security.selinux')?.toString().replace(/\0+$/, '');
  if (!file) return undefined;
  const own = readFileSync('/proc/thread-self/attr/current', 'utf8').replace(/\0+$/, '').trim().split(':');
  const level = file.split(':').slice(3).join(':');
  if (own.length < 3 || level === '') return undefined;
  return `${own.slice(0, 3).join(':')}:${level}`;
}

/** Runs fn (which must create its socket synchronously) with the thread's socket-create label set. */
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
