import { resolveStatePaths, type StatePaths } from '../host/paths.js';
import { Hypervisor } from '../lifecycle/hypervisor.js';
import { buildStack } from '../security/stack.js';
import { Store } from '../store/store.js';
import type { ParsedArgs } from './args.js';
import { requireRealFilesystem } from './pseudo-fs.js';
import { writeOut } from './write.js';

/** The state dir and runtime root of this command; an explicit dir is made absolute and must be on a real filesystem. */
export function statePaths(args: ParsedArgs): StatePaths {
  const paths = resolveStatePaths(args.stateDir, process.env, process.getuid?.() ?? 0);
  const stateDir = requireRealFilesystem(paths.stateDir, 'the state dir');
  // An explicit dir's runtime root is DIR/run (host/paths.ts): it moves with the absolute dir.
  return stateDir === paths.stateDir ? paths : resolveStatePaths(stateDir, {}, process.getuid?.() ?? 0);
}

/** The security stack named by --security-driver, SVIRT_SECURITY_DRIVER, or auto. */
export function stackSpec(args: ParsedArgs): string {
  return args.securityDriver ?? process.env['SVIRT_SECURITY_DRIVER'] ?? 'auto';
}

/** Opens the store (or takes one opened already), builds the security stack, and reconciles before the verb runs. */
export async function openHypervisor(args: ParsedArgs, opts: { reconcile?: boolean; store?: Store } = {}): Promise<Hypervisor> {
  const paths = statePaths(args);
  const store = opts.store ?? Store.open(paths.stateDir);
  const config = { env: process.env };
  const manager = await buildStack(stackSpec(args), config);
  const hv = new Hypervisor({ paths, store, manager, config });
  if (opts.reconcile ?? true) await hv.reconcile();
  return hv;
}

/** Prints `text`, or `data` as one JSON document with --json. */
export function output(args: ParsedArgs, text: string, data: unknown): void {
  if (args.json) writeOut(JSON.stringify(data, null, 2) + '\n');
  else if (text !== '') writeOut(text.endsWith('\n') ? text : text + '\n');
}
