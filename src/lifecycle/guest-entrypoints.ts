/**
 * The entrypoint check of one guest's files (src/access/entrypoints.ts), made by the steps that
 * open files a definition names: start, hotplug, snapshots. A module of its own, so the verbs
 * that open none (list, dominfo, destroy, define) do not load the check's code.
 */
import { Entrypoints } from '../access/entrypoints.js';
import { ownerIds } from '../access/owner-ids.js';
import type { SecurityManager } from '../security/manager.js';
import { parsePoolXml } from '../storage/storage-xml.js';
import type { Store } from '../store/store.js';
import type { LifecycleEnv } from './env.js';

/**
 * The check under the stack the guest runs with, as its owner may open the files when that is
 * not root (owner-ids.ts).
 */
export function guestEntrypoints(env: LifecycleEnv, runtimeDir: string, manager: SecurityManager, uuid: string): Entrypoints {
  // A svirt running as the owner itself (a user's session instance) opens the files with the
  // owner's own rights: the kernel's checks are the owner's already.
  const found = ownerIds(env.store, uuid);
  const owner = found && found.uid !== (process.geteuid?.() ?? 0) ? found : undefined;
  return new Entrypoints(env.entrypointRules, {
    stateDir: env.paths.stateDir,
    runtimeRoot: env.paths.runtimeRoot,
    runtimeDir,
    selinux: manager.names.includes('selinux'),
    ...(owner ? { owner } : {}),
    poolPath: (name) => activePoolPath(env.store, name),
  });
}

/** The directory of an active storage pool, for `entrypoints.pools` (none before any pool exists). */
function activePoolPath(store: Store, name: string): string | undefined {
  const db = store.db;
  if (db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'storage_pools'").get() === undefined)
    return undefined;
  const row = db.prepare('SELECT xml FROM storage_pools WHERE name = ? AND active = 1').get(name) as { xml: string } | undefined;
  return row && parsePoolXml(row.xml).path;
}
