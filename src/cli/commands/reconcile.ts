import { Store } from '../../store/store.js';
import type { ParsedArgs } from '../args.js';
import { openHypervisor, output, statePaths } from '../context.js';

/** Cleans up guests whose QEMU is gone (the monitor's own hook is src/cli/hook.ts). */
export async function run(args: ParsedArgs): Promise<number> {
  // No store, nothing to clean: and a cleanup must not recreate a state dir that was removed.
  const store = Store.openIfExists(statePaths(args).stateDir);
  if (store === undefined) {
    if (!args.flags.has('quiet') || args.json) output(args, '', { cleaned: [] });
    return 0;
  }
  const hv = await openHypervisor(args, { reconcile: false, store });
  const cleaned = await hv.reconcile();
  // Host-wide label claims this state dir left behind (a crash between a claim and its commit).
  const claimsRemoved = store.sweepClaims();
  if (!args.flags.has('quiet') || args.json) {
    const lines = [
      ...cleaned.map((n) => `Domain '${n}' cleaned up`),
      ...claimsRemoved.map((c) => `Stale label claim ${c} removed`),
    ];
    output(args, lines.join('\n'), { cleaned, claimsRemoved });
  }
  return 0;
}
