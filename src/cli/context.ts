import { resolveStatePaths } from '../host/paths.js';
import { Hypervisor } from '../lifecycle/hypervisor.js';
import { buildStack } from '../security/stack.js';
import { Store } from '../store/store.js';
import type { ParsedArgs } from './args.js';

/** Opens the store, builds the security stack, and reconciles before the verb runs. */
export async function openHypervisor(args: ParsedArgs, opts: { reconcile?: boolean } = {}): Promise<Hypervisor> {
  const paths = resolveStatePaths(args.stateDir, process.env, process.getuid?.() ?? 0);
  const store = Store.open(paths.stateDir);
  const config = { env: process.env };
  const manager = await buildStack(args.securityDriver ?? process.env['SVIRT_SECURITY_DRIVER'] ?? 'auto', config);
  const hv = new Hypervisor({ paths, store, manager, config });
  if (opts.reconcile ?? true) await hv.reconcile();
  return hv;
}

/** Prints `text`, or `data` as one JSON document with --json. */
export function output(args: ParsedArgs, text: string, data: unknown): void {
  if (args.json) process.stdout.write(JSON.stringify(data, null, 2) + '\n');
  else if (text !== '') process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}
