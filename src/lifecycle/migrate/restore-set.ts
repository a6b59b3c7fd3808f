/** What a stop of a migrating source gives back (stop.ts asks; kept apart from source.ts, which stops guests). */
import type { GuestResource } from '../../security/driver.js';
import type { RunningRecord } from '../../store/store.js';
import type { LifecycleEnv } from '../env.js';
import { decodeCookie, handedOver, takenImages } from './handover.js';

/**
 * What a stop of a migrating source restores: everything, unless the destination took an
 * image — then no handed-over image comes back here (those not taken yet are the
 * destination's to take), and this host forgets their originals (the destination has them).
 */
export function resourcesToRestore(env: LifecycleEnv, rec: RunningRecord): readonly GuestResource[] {
  if (rec.pending?.op !== 'migrate-out' || !taken(rec)) return rec.resources;
  for (const r of rec.resources.filter(handedOver)) {
    for (const d of rec.stack) if (env.store.release(d, r.path, rec.uuid) !== undefined) env.store.forget(d, r.path);
  }
  return rec.resources.filter((r) => !handedOver(r));
}

function taken(rec: RunningRecord): boolean {
  const text = rec.pending?.migration?.cookie;
  return text !== undefined && takenImages(decodeCookie(Buffer.from(text, 'utf8'), rec.uuid)).length > 0;
}
