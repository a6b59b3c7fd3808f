/**
 * `undefine` of a guest that has snapshot metadata (libvirt's rule): refused unless the caller
 * asks for the metadata to go too (`--snapshots-metadata`, VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA).
 * The check runs before anything is removed; the rows go only once the undefine goes through.
 * The table is looked for, never made: a store that never had a snapshot pays one query.
 */
import type { Database } from 'better-sqlite3';
import { SvirtError } from '../../errors.js';

/** Checks a guest's snapshot rows; returns what removes them (a no-op when there are none). */
export function undefineSnapshots(db: Database, uuid: string, name: string, removeMetadata: boolean): () => void {
  const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'domain_snapshots'").get();
  if (table === undefined) return () => undefined;
  const { n } = db.prepare('SELECT COUNT(*) AS n FROM domain_snapshots WHERE domain_uuid = ?').get(uuid) as { n: number };
  if (n === 0) return () => undefined;
  if (!removeMetadata)
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `cannot undefine domain '${name}' with ${n} snapshot${n === 1 ? '' : 's'} (--snapshots-metadata removes their metadata)`,
    );
  return () => void db.prepare('DELETE FROM domain_snapshots WHERE domain_uuid = ?').run(uuid);
}
