import { spawnSync } from 'node:child_process';
import { SvirtError } from '../errors.js';
import { landlockAbi, svirtExecPath } from '../host/native.js';
import { DacDriver } from './dac/dac-driver.js';
import type { DriverName, SecurityDriver } from './driver.js';
import { LandlockDriver, type LandlockHostInfo } from './landlock/landlock-driver.js';
import { SecurityManager } from './manager.js';
import { NoneDriver } from './none/none-driver.js';
import { kernelRunsAppArmor } from './apparmor/apparmor-kernel.js';
import { kernelRunsSelinux } from './selinux/selinux-kernel.js';

export const DRIVER_NAMES: readonly DriverName[] = ['selinux', 'apparmor', 'dac', 'landlock', 'none'];

/** Settings of the drivers, from the environment (and later the config file). */
export interface SecurityConfig {
  readonly env: NodeJS.ProcessEnv;
}

/** Probes the kernel's Landlock support once per process. */
export function probeLandlockHost(env: NodeJS.ProcessEnv): LandlockHostInfo {
  let abi = 0;
  let error: string | undefined;
  try {
    abi = landlockAbi();
  } catch (err) {
    error = (err as NodeJS.ErrnoException).code ?? String(err);
  }
  const forced = env['SVIRT_LANDLOCK_ABI'];
  if (forced !== undefined && forced !== '') abi = Math.min(abi, Number(forced));
  // Without root, hiding other guests' runtime dirs needs an unprivileged user namespace.
  let userns = false;
  if (process.getuid?.() !== 0) {
    const r = spawnSync(svirtExecPath(), ['--probe'], { encoding: 'utf8' });
    try {
      userns = (JSON.parse(r.stdout) as { userns?: boolean }).userns === true;
    } catch {
      userns = false; // a probe that fails says no
    }
  }
  return error === undefined ? { abi, userns } : { abi, error, userns };
}

/** Builds one driver by name; drivers that need host facts probe them here. */
export async function createDriver(name: DriverName, config: SecurityConfig): Promise<SecurityDriver> {
  const env = config.env;
  switch (name) {
    case 'none':
      return new NoneDriver();
    case 'dac':
      return new DacDriver();
    case 'landlock':
      return new LandlockDriver(probeLandlockHost(env), {
        bestEffort: env['SVIRT_LANDLOCK_BEST_EFFORT'] !== '0',
        ...(env['SVIRT_LANDLOCK_REQUIRE_ABI'] ? { requiredAbi: Number(env['SVIRT_LANDLOCK_REQUIRE_ABI']) } : {}),
      });
    case 'selinux': {
      const { createSelinuxDriver } = await import('./selinux/factory.js');
      return createSelinuxDriver(env);
    }
    case 'apparmor': {
      const { createApparmorDriver } = await import('./apparmor/factory.js');
      return createApparmorDriver(env);
    }
  }
}

/**
 * In `auto`, an LSM driver in its default (kernel) mode on a kernel without that LSM would
 * probe `disable`: it is not even loaded (its modules are a fifth of a verb's start, issue 17).
 */
function kernelLacks(name: DriverName, env: NodeJS.ProcessEnv): boolean {
  if (name === 'selinux') return (env['SVIRT_SELINUX_MODE'] || 'kernel') === 'kernel' && !kernelRunsSelinux();
  if (name === 'apparmor') return (env['SVIRT_APPARMOR_MODE'] || 'kernel') === 'kernel' && !kernelRunsAppArmor();
  return false;
}

/** Parses `auto`, `none` or a comma-separated list of driver names. */
export function parseStackSpec(text: string): 'auto' | DriverName[] {
  const t = text.trim();
  if (t === '' || t === 'auto') return 'auto';
  const names = t.split(',').map((s) => s.trim());
  for (const n of names) {
    if (!DRIVER_NAMES.includes(n as DriverName)) {
      throw new SvirtError('SVIRT_ERR_USAGE', `unknown security driver '${n}' (known: auto, ${DRIVER_NAMES.join(', ')})`);
    }
  }
  return names as DriverName[];
}

/**
 * The stack for this host. Named explicitly: every driver must be available, or it is an
 * error naming the driver and why (as libvirt's "Security driver X not enabled").
 * `auto`: selinux or apparmor when the kernel runs it, then dac when root, then landlock
 * when the kernel has it; none only when nothing else is there.
 */
export async function buildStack(spec: string, config: SecurityConfig): Promise<SecurityManager> {
  const parsed = parseStackSpec(spec);
  if (parsed !== 'auto') {
    const drivers: SecurityDriver[] = [];
    for (const name of parsed) {
      const d = await createDriver(name, config);
      const p = d.probe();
      if (p.status === 'disable') {
        const reason = p.reason.startsWith('Security driver') ? p.reason : `Security driver ${name} not enabled: ${p.reason}`;
        throw new SvirtError('SVIRT_ERR_SECURITY_UNAVAILABLE', reason, {
          details: { driver: name },
        });
      }
      drivers.push(d);
    }
    return new SecurityManager(drivers);
  }
  const drivers: SecurityDriver[] = [];
  for (const name of ['selinux', 'apparmor', 'dac', 'landlock'] as const) {
    if (name === 'apparmor' && drivers.some((d) => d.name === 'selinux')) continue; // one LSM driver
    if (kernelLacks(name, config.env)) continue;
    const d = await createDriver(name, config);
    if (d.probe().status === 'enable') drivers.push(d);
  }
  return new SecurityManager(drivers.length > 0 ? drivers : [new NoneDriver()]);
}

/** The stack a running guest was started with, rebuilt by name (drivers are not re-probed: it must be cleaned up). */
export async function stackFromNames(names: readonly DriverName[], config: SecurityConfig): Promise<SecurityManager> {
  const drivers: SecurityDriver[] = [];
  for (const n of names) drivers.push(await createDriver(n, config));
  return new SecurityManager(drivers);
}
