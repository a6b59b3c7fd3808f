/**
 * What the per-guest monitor runs once QEMU has exited by itself, when no `svirt serve` takes
 * the cleanup (docs/startup.md). A guest whose cleanup is only its files' owners, its cgroup
 * and its record gets svirt-cleanup (native/svirt-cleanup.c, no Node start), which checks
 * that again when it runs and hands anything else to the Node entry, src/cli/hook.ts; every
 * other guest gets the Node entry directly.
 */
import type { DomainDef } from '../domain/domain-def.js';
import { svirtHookPath } from '../host/package-root.js';
import { svirtCleanupPath } from '../host/native.js';
import type { SecurityManager } from '../security/manager.js';
import type { LifecycleEnv } from './env.js';

/** Drivers whose cleanup svirt-cleanup does: dac's owners; landlock and none restore nothing. */
const PLAIN_DRIVERS: ReadonlySet<string> = new Set(['dac', 'landlock', 'none']);

/** The monitor's hook argv for a guest starting with `live` under env's stack. */
export function monitorHook(env: LifecycleEnv, live: DomainDef): string[] {
  const node = [process.execPath, svirtHookPath(), env.paths.stateDir, env.paths.runtimeRoot];
  if (env.config.env['SVIRT_CLEANUP'] === 'node' || !plainCleanup(env.manager, live)) return node;
  let program: string;
  try {
    program = svirtCleanupPath();
  } catch {
    return node; // not built: the Node entry does it all, as before svirt-cleanup
  }
  const args = ['--state-dir', env.paths.stateDir, '--runtime-root', env.paths.runtimeRoot, '--uuid', live.uuid];
  return [program, ...args, '--', ...node];
}

/**
 * What svirt start can tell of a guest's cleanup: a stack of dac, landlock and none; no TPM
 * (its transient state is removed at stop); a live label from every driver (without one, the
 * manager restores nothing: svirt-cleanup would not know). The rest (helpers, taps, chardevs,
 * /dev/kvm's ACL, an operation pending) changes while the guest runs: svirt-cleanup checks it.
 */
export function plainCleanup(manager: SecurityManager, live: DomainDef): boolean {
  return manager.names.every((n) => PLAIN_DRIVERS.has(n)) && (live.tpms?.length ?? 0) === 0 && manager.hasLiveLabels(live);
}
