import type { ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';

/** Cleans up guests whose QEMU is gone; the per-guest monitor runs this when QEMU exits. */
export async function run(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args, { reconcile: false });
  const cleaned = await hv.reconcile();
  if (!args.flags.has('quiet') || args.json) {
    output(args, cleaned.map((n) => `Domain '${n}' cleaned up`).join('\n'), { cleaned });
  }
  return 0;
}
