import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { resolveStatePaths } from '../../host/paths.js';
import type { ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';

/** Cleans up guests whose QEMU is gone; the per-guest monitor runs this when QEMU exits. */
export async function run(args: ParsedArgs): Promise<number> {
  // No store, nothing to clean: and a hook must not recreate a state dir that was removed.
  const paths = resolveStatePaths(args.stateDir, process.env, process.getuid?.() ?? 0);
  if (!existsSync(join(paths.stateDir, 'svirt.db'))) {
    if (!args.flags.has('quiet') || args.json) output(args, '', { cleaned: [] });
    return 0;
  }
  const hv = await openHypervisor(args, { reconcile: false });
  const cleaned = await hv.reconcile();
  if (!args.flags.has('quiet') || args.json) {
    output(args, cleaned.map((n) => `Domain '${n}' cleaned up`).join('\n'), { cleaned });
  }
  return 0;
}
