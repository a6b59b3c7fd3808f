/**
 * A guest's taps removed by their records (a stop, a failed start, a NIC's unplug). A module of
 * its own: a stop loads it without the start's NIC code (nics.ts, its helpers and launcher).
 */
import { currentNetns } from '../network/network-host.js';
import { removeTap } from '../network/tap.js';
import { NetworkStore } from '../store/networks.js';
import type { LifecycleEnv } from './env.js';

/**
 * Removes the recorded taps of a guest (all, or the one named): each only if it is still
 * the device recorded, and only from the network namespace it was made in.
 */
export async function releaseNics(env: LifecycleEnv, uuid: string, only?: string): Promise<void> {
  const store = new NetworkStore(env.store.db);
  const here = currentNetns();
  for (const t of store.tapsOf(uuid)) {
    if (only !== undefined && t.name !== only) continue;
    if (t.netns !== here) {
      env.warn(
        `tap ${t.name} of guest ${uuid} was made in another network namespace (inode ${t.netns}): left to its own fate there`,
      );
    } else {
      await removeTap(t);
    }
    store.deleteTap(uuid, t.name);
  }
}
