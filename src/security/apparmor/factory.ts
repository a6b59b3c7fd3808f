import { SvirtError } from '../../errors.js';
import type { SecurityDriver } from '../driver.js';
import { AppArmorDriver } from './apparmor-driver.js';
import type { AppArmorDriverOptions } from './apparmor-driver.js';

/**
 * Builds the apparmor driver from SVIRT_* settings:
 *   SVIRT_APPARMOR_MODE         kernel (default) | compile-only
 *   SVIRT_APPARMOR_PROFILE_DIR  default /etc/apparmor.d/svirt
 *   SVIRT_APPARMOR_PARSER       default apparmor_parser from PATH, else /sbin/apparmor_parser
 */
export function createApparmorDriver(env: NodeJS.ProcessEnv): SecurityDriver {
  return new AppArmorDriver(apparmorOptionsFromEnv(env));
}

export function apparmorOptionsFromEnv(env: NodeJS.ProcessEnv): AppArmorDriverOptions {
  const mode = env['SVIRT_APPARMOR_MODE'];
  if (mode !== undefined && mode !== '' && mode !== 'kernel' && mode !== 'compile-only') {
    throw new SvirtError('SVIRT_ERR_USAGE', `SVIRT_APPARMOR_MODE must be kernel or compile-only, not ${JSON.stringify(mode)}`);
  }
  const dir = env['SVIRT_APPARMOR_PROFILE_DIR'];
  const parser = env['SVIRT_APPARMOR_PARSER'];
  return {
    ...(mode === 'compile-only' ? { mode } : { mode: 'kernel' as const }),
    ...(dir !== undefined && dir !== '' ? { profileDir: dir } : {}),
    ...(parser !== undefined && parser !== '' ? { parser } : {}),
  };
}
