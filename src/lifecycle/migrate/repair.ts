import type { RunningRecord } from '../../store/store.js';
import type { LifecycleEnv } from '../env.js';

/** A migration whose process died, finished or undone by the reconcile (docs/migration.md, "Crashes"). */
export async function repairMigration(env: LifecycleEnv, rec: RunningRecord): Promise<void> {
  if (rec.pending?.op === 'migrate-in') await (await import('./incoming-end.js')).repairMigrationIn(env, rec);
  else await (await import('./source.js')).repairMigrationOut(env, rec);
}
