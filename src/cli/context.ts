import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { EntrypointRules } from '../access/entrypoint-rules.js';
import { RULES_FILE } from '../access/rules-file.js';
import { resolveStatePaths, type StatePaths } from '../host/paths.js';
import { Hypervisor } from '../lifecycle/hypervisor.js';
import { buildStack } from '../security/stack.js';
import { lentStore } from '../store/lent-store.js';
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
  const store = opts.store ?? lentStore(paths.stateDir) ?? Store.open(paths.stateDir);
  const config = { env: process.env };
  const manager = await buildStack(stackSpec(args), config);
  const entrypointRules = await entrypointRulesOf(paths.stateDir);
  // Warnings through writeOut: held with the rest of a read verb's output (main-read.ts), and no stream loaded.
  const warn = (m: string): void => writeOut(`warning: ${m}\n`, 2);
  const hv = new Hypervisor({ paths, store, manager, config, warn, ...(entrypointRules ? { entrypointRules } : {}) });
  if (opts.reconcile ?? true) await hv.reconcile();
  return hv;
}

/**
 * The `[entrypoints]` of the state dir's access rules (docs/entrypoints.md); the rules file is
 * read only when there is one, so a host without one pays a stat.
 */
async function entrypointRulesOf(stateDir: string): Promise<EntrypointRules | undefined> {
  if (!existsSync(join(stateDir, RULES_FILE))) return undefined;
  const [{ loadRules }, { stateDirAdmin }] = await Promise.all([import('../access/rules.js'), import('../access/cli-gate.js')]);
  return loadRules(stateDir, stateDirAdmin(stateDir, process.getuid?.() ?? 0))?.entrypoints;
}

/** Prints `text`, or `data` as one JSON document with --json. */
export function output(args: ParsedArgs, text: string, data: unknown): void {
  if (args.json) writeOut(JSON.stringify(data, null, 2) + '\n');
  else if (text !== '') writeOut(text.endsWith('\n') ? text : text + '\n');
}
