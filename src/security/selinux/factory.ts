import { SvirtError } from '../../errors.js';
import type { SecurityDriver } from '../driver.js';
import { SelinuxDriver, type SelinuxDriverOptions } from './selinux-driver.js';

/**
 * Builds the selinux driver from SVIRT_* settings:
 *   SVIRT_SELINUX_MODE            kernel (default) | userspace-test (label files, no exec context;
 *                                 for hosts whose kernel does not run SELinux)
 *   SVIRT_SELINUX_ROOT            default /etc/selinux
 *   SVIRT_SELINUX_CATEGORY_RANGE  e.g. c10.c99; default this process's clearance, else c0.c1023
 */
export function createSelinuxDriver(env: NodeJS.ProcessEnv): SecurityDriver {
  return new SelinuxDriver(selinuxOptionsFromEnv(env));
}

export function selinuxOptionsFromEnv(env: NodeJS.ProcessEnv): SelinuxDriverOptions {
  const mode = env['SVIRT_SELINUX_MODE'];
  if (mode !== undefined && mode !== '' && mode !== 'kernel' && mode !== 'userspace-test') {
    throw new SvirtError('SVIRT_ERR_USAGE', `SVIRT_SELINUX_MODE must be kernel or userspace-test, not ${JSON.stringify(mode)}`);
  }
  const root = env['SVIRT_SELINUX_ROOT'];
  const range = env['SVIRT_SELINUX_CATEGORY_RANGE'];
  return {
    userspaceTest: mode === 'userspace-test',
    ...(root !== undefined && root !== '' ? { root } : {}),
    ...(range !== undefined && range !== '' ? { categoryRange: range } : {}),
  };
}
