import { existsSync } from 'node:fs';

/** Where the kernel's SELinux interface is mounted. */
export const SELINUXFS = '/sys/fs/selinux';

/** Whether the running kernel has SELinux (selinuxfs mounted). */
export function kernelRunsSelinux(): boolean {
  return existsSync(`${SELINUXFS}/enforce`);
}
