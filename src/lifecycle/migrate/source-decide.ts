/**
 * Who runs a migrating guest, as the source sees it (docs/migration.md, "The commit point"):
 * the images decide when they show their holder; with copied disks (`--copy-storage-all`)
 * the source's journal does.
 */
import { SvirtError } from '../../errors.js';
import type { RunningRecord } from '../../store/store.js';
import type { LifecycleEnv } from '../env.js';
import { decodeCookie, showsHolder, takenImages, type MigrationCookie } from './handover.js';

export function setPhase(env: LifecycleEnv, rec: RunningRecord, phase: string): void {
  const op = rec.pending;
  if (op?.migration) env.store.updateOp(rec.uuid, { ...op, migration: { ...op.migration, phase } });
}

/**
 * The destination's Finish may come from now on (it is sent, or the client that drives the
 * migration may send it): after this, a source that loses track of it cannot tell whether the
 * destination runs a guest with copied disks.
 */
export function markFinishing(env: LifecycleEnv, uuid: string): void {
  const rec = env.store.getRunning(uuid);
  if (rec?.pending?.op === 'migrate-out') setPhase(env, rec, 'finishing');
}

/**
 * The images decide (docs/migration.md, "The commit point"): one the destination took means
 * the guest is the destination's. Otherwise a cancelled or unconfirmed migration resumes
 * here, since only the destination's Finish takes images and it is not coming — except with
 * no image that shows its holder (no dac or selinux in the stack) and a stream that
 * completed: then nobody knows, and the guest is held paused (never run twice).
 */
export function decide(rec: RunningRecord, word: 'confirmed' | 'cancelled' | 'unknown'): 'end' | 'resume' | 'hold' {
  const cookie = cookieOf(rec);
  const images = cookie.images.filter(showsHolder);
  if (anyMoved(rec)) return 'end';
  if (cookie.copy && word === 'unknown') {
    // Copied disks show no holder: the journal does. 'performing', 'migrated' (Perform had not
    // returned, or svirt's own peer driver had not sent Finish yet): no Finish can have taken the
    // guest, and the destination gives it up (its Prepare's client went, or gets a cancelled Finish); 'confirmed':
    // the destination runs it. After Finish was sent ('finishing'), nobody here knows.
    const phase = rec.pending?.migration?.phase;
    if (phase === 'performing' || phase === 'migrated') return 'resume';
    if (phase === 'confirmed') return 'end';
    return 'hold';
  }
  if (word === 'confirmed') {
    if (images.length > 0)
      throw new SvirtError('SVIRT_ERR_MIGRATE', `the destination says it runs '${rec.name}' but holds none of its images`);
    return 'end';
  }
  return word === 'cancelled' || images.length > 0 ? 'resume' : 'hold';
}

function anyMoved(rec: RunningRecord): boolean {
  return takenImages(cookieOf(rec)).length > 0;
}

function cookieOf(rec: RunningRecord): MigrationCookie {
  const text = rec.pending?.migration?.cookie;
  if (text === undefined) throw new SvirtError('SVIRT_ERR_INTERNAL', `migration of '${rec.name}' has no journalled handover`);
  return decodeCookie(Buffer.from(text, 'utf8'), rec.uuid);
}
