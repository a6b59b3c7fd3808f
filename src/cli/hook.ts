/**
 * The lean entry the per-guest monitor runs once QEMU has exited, when no `svirt serve` took the
 * cleanup (issue 17): what `svirt --security-driver none reconcile --quiet` does, bundled on its
 * own (dist/svirt-hook.cjs, scripts/bundle.mjs) from the store and the restore path only, so a
 * cleanup loads a sixth of the CLI. The guest's own stack comes from its record, as in any
 * reconcile; this command's stack is `none` and probes nothing.
 *   node bin/svirt-hook.js STATE_DIR [RUNTIME_ROOT]
 * RUNTIME_ROOT is the one the guest started with (the system instance's /run/svirt is not
 * STATE_DIR/run); a monitor started by an older svirt passes none, and gets STATE_DIR/run.
 */
import { isAbsolute } from 'node:path';
import { SvirtError } from '../errors.js';
import { resolveStatePaths } from '../host/paths.js';
import { LifecycleEnv } from '../lifecycle/env.js';
import { reconcile } from '../lifecycle/reconcile.js';
import { SecurityManager } from '../security/manager.js';
import { NoneDriver } from '../security/none/none-driver.js';
import { Store } from '../store/store.js';
import { writeOut } from './write.js';

export async function main(argv: readonly string[]): Promise<number> {
  const [stateDir, runtimeRoot, ...rest] = argv;
  if (
    stateDir === undefined ||
    !isAbsolute(stateDir) ||
    (runtimeRoot !== undefined && !isAbsolute(runtimeRoot)) ||
    rest.length > 0
  ) {
    writeOut('usage: svirt-hook STATE_DIR [RUNTIME_ROOT] (absolute; what the per-guest monitor runs)\n', 2);
    return 2;
  }
  try {
    const resolved = resolveStatePaths(stateDir, {}, process.getuid?.() ?? 0);
    const paths = runtimeRoot === undefined ? resolved : { ...resolved, runtimeRoot };
    const store = Store.openIfExists(paths.stateDir);
    if (store === undefined) return 0; // no store, nothing to clean
    const env = new LifecycleEnv({
      paths,
      store,
      manager: new SecurityManager([new NoneDriver()]),
      config: { env: process.env },
    });
    await reconcile(env);
    return 0;
  } catch (err) {
    const message =
      err instanceof SvirtError ? err.message : `internal error: ${err instanceof Error ? err.message : String(err)}`;
    writeOut(`error: ${message}\n`, 2);
    return 1;
  }
}
