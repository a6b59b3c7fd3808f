/**
 * The store the CLI's access gate opened for the command it guards (src/access/cli-gate.ts),
 * lent to the verb while it runs: the gate reads the guest's facts before the verb and writes
 * the audit rows after it, and the verb's Hypervisor (src/cli/context.ts) uses the same
 * connection instead of opening a second one (a verb must not close it: the gate records after
 * it). One open less per audited verb: the file, its WAL and shared memory, the schema read,
 * and a close (~2 ms of define, start or destroy, issue 17).
 */
import { resolve } from 'node:path';
import type { Store } from './store.js';

let lent: { readonly dir: string; readonly store: Store } | undefined;

/** Runs `run` with `store` lent for `stateDir`; the loan ends with it (the store stays the gate's). */
export async function lendStore<T>(stateDir: string, store: Store, run: () => Promise<T>): Promise<T> {
  const before = lent;
  lent = { dir: resolve(stateDir), store };
  try {
    return await run();
  } finally {
    lent = before;
  }
}

/** The store lent for `stateDir` while it is open, else undefined (the caller opens its own). */
export function lentStore(stateDir: string): Store | undefined {
  return lent !== undefined && lent.dir === resolve(stateDir) && lent.store.isOpen ? lent.store : undefined;
}
