import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Hypervisor } from '../src/lifecycle/hypervisor.js';
import type { StatePaths } from '../src/host/paths.js';
import { buildStack } from '../src/security/stack.js';
import { Store } from '../src/store/store.js';

/** The stacks every latency is measured for, as `--security-driver` spells them. */
export const STACKS = ['none', 'dac', 'landlock', 'dac,landlock'] as const;
export type StackName = (typeof STACKS)[number];

/** <package>/bin/svirt.js (the bench runs from dist/bench/). */
export const SVIRT_BIN = fileURLToPath(new URL('../../bin/svirt.js', import.meta.url));

export function statePaths(stateDir: string): StatePaths {
  return { stateDir, runtimeRoot: join(stateDir, 'run'), system: process.getuid?.() === 0 };
}

/** A Hypervisor as the CLI builds one (context.ts), on a state dir of the bench's own. */
export async function openHypervisor(stateDir: string, stack: string, env: NodeJS.ProcessEnv = process.env): Promise<Hypervisor> {
  const store = Store.open(stateDir);
  const config = { env };
  const manager = await buildStack(stack, config);
  return new Hypervisor({ paths: statePaths(stateDir), store, manager, config });
}

/**
 * `fn` with a Hypervisor on the state dir, its store closed after: the bench opens its own handle
 * only around its own work, never while a timed CLI command runs, so the command is alone on its
 * store as a user's is (its close then checkpoints and syncs; beside an open connection it syncs
 * the WAL instead: src/store/wal-sync.ts). Until session 22 the handles stayed open.
 */
export async function withHypervisor<T>(stateDir: string, stack: string, fn: (hv: Hypervisor) => Promise<T> | T): Promise<T> {
  const hv = await openHypervisor(stateDir, stack);
  try {
    return await fn(hv);
  } finally {
    hv.store.close();
  }
}

/** Whether a stack can run here, and why not (e.g. dac without root). */
export async function stackAvailable(stack: string): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    await buildStack(stack, { env: process.env });
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : String(err) };
  }
}

/** argv of the svirt CLI for one verb. */
export function cliArgv(stateDir: string, stack: string, verb: readonly string[]): string[] {
  return [process.execPath, SVIRT_BIN, '--state-dir', stateDir, '--security-driver', stack, ...verb];
}

/** The environment without NODE_EXTRA_CA_CERTS (what a node start costs without it). */
export function envWithoutExtraCerts(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env['NODE_EXTRA_CA_CERTS'];
  return env;
}
