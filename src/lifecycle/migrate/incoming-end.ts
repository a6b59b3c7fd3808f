/**
 * The end of an incoming migration (destination.ts's Finish, and the reconcile): the take-over
 * of shared images (the commit point), the abort that gives back what was taken and ends the
 * guest here, and the repair of a destination whose process died.
 */
import { parseDomainXml } from '../../domain/index.js';
import { SvirtError } from '../../errors.js';
import { withHandle, withHandleAsync } from '../../host/file-handle.js';
import type { PendingOp, RunningRecord } from '../../store/store.js';
import { crashPoint } from '../crash-points.js';
import type { LifecycleEnv } from '../env.js';
import { destroyGuest } from '../stop.js';
import { attachImages } from './attach-later.js';
import { unexportDisks } from './copy-incoming.js';
import { removeCreated } from './dest-images.js';
import { removeExportSocket } from './nbd-export.js';
import { decodeCookie, giveBack, handedOver, imageState, sameHolder, takenImages, type MigrationCookie } from './handover.js';

/**
 * The commit point. Journalled first; then image by image: the same file, still exactly as
 * the source holds it, its originals remembered here, labelled for this guest. If one cannot
 * be taken, those taken go back to the source's owner and label, and the guest ends here.
 */
export async function takeOver(env: LifecycleEnv, rec: RunningRecord): Promise<void> {
  const op = rec.pending as PendingOp;
  const cookie = decodeCookie(Buffer.from(op.migration?.cookie ?? '', 'utf8'), rec.uuid);
  env.store.updateOp(rec.uuid, { ...op, migration: { phase: 'taking-over', cookie: op.migration?.cookie ?? '' } });
  crashPoint('migrate-in:journaled');
  const live = parseDomainXml(rec.liveXml);
  const manager = await env.managerFor(rec);
  const ctx = env.context(live, rec.runtimeDir);
  try {
    for (const r of rec.resources.filter(handedOver)) {
      const img = cookie.images.find((i) => i.path === r.path);
      if (!img) throw new SvirtError('SVIRT_ERR_MIGRATE', `"${r.path}" was not handed over`);
      await withHandleAsync(r, 'take over', async (h) => {
        const now = imageState(h);
        // Taken already (a repeat after a crash): nothing to check against the source.
        if (
          !sameHolder(now, img.state) &&
          !rec.stack.some((d) => env.store.recall(d, r.path)?.users.includes(rec.uuid) === true)
        ) {
          throw new SvirtError(
            'SVIRT_ERR_MIGRATE',
            `"${r.path}" is no longer as the source holds it (owner ${now.uid}:${now.gid}): not taken`,
          );
        }
        for (const d of rec.stack) {
          const original = img.originals[d];
          if (original !== undefined) env.store.remember(d, r.path, rec.uuid, original);
        }
        await manager.setResourceLabel(live, { ...r, handle: h }, ctx);
      });
      crashPoint('migrate-in:took-image');
    }
    // Only now does QEMU get the images it waits for (attach-later.ts): they are this guest's.
    await env.withQmp(rec, (q) => attachImages(q, live, rec.resources));
    crashPoint('migrate-in:attached');
  } catch (err) {
    await abortIncoming(env, env.store.getRunning(rec.uuid) ?? rec); // gives back what was taken
    throw err;
  }
}

/**
 * Ends the incoming guest here. An image it took goes back to the source's owner and label;
 * one it did not take keeps the source's, and this host forgets any original it noted for it
 * (a crash between noting and labelling), so the cleanup restores nothing of the images.
 */
export async function abortIncoming(env: LifecycleEnv, rec: RunningRecord): Promise<void> {
  const text = rec.pending?.migration?.cookie;
  if (text !== undefined) {
    const cookie = decodeCookie(Buffer.from(text, 'utf8'), rec.uuid);
    const taken = new Set(takenImages(cookie).map((i) => i.path));
    // Copied images are this host's own, labelled at start: the cleanup restores them; those created here go after it.
    for (const r of cookie.copy ? [] : rec.resources.filter(handedOver)) {
      const img = cookie.images.find((i) => i.path === r.path);
      if (img && taken.has(r.path)) withHandle(r, 'give back', (h) => giveBack(h, img.state));
      for (const d of rec.stack) if (env.store.release(d, r.path, rec.uuid) !== undefined) env.store.forget(d, r.path);
    }
  }
  env.store.endOp(rec.uuid);
  await destroyGuest(env, rec.uuid, 0);
  const copy = text === undefined ? undefined : decodeCookie(Buffer.from(text, 'utf8'), rec.uuid).copy;
  if (copy) {
    removeExportSocket(env.paths.runtimeRoot, rec.uuid);
    removeCreated(copy.created ?? []);
  }
}

export function cookieOf(rec: RunningRecord): MigrationCookie {
  return decodeCookie(Buffer.from(rec.pending?.migration?.cookie ?? '', 'utf8'), rec.uuid);
}

/** The reconcile's repair of a destination whose process died: before the commit point the guest goes; after, it runs. */
export async function repairMigrationIn(env: LifecycleEnv, rec: RunningRecord): Promise<void> {
  const copy = cookieOf(rec).copy;
  // A copy's commit point is its journal: the export ended, the guest is to run here.
  if (copy && rec.pending?.migration?.phase === 'committed') {
    await unexportDisks(env, rec, copy);
    await env.withQmp(rec, (q) => q.execute('cont'));
    env.store.updateRunning(rec.uuid, { paused: false });
    env.store.endOp(rec.uuid);
    return;
  }
  // The commit point is the first image taken, not the journal: none taken, the source may have resumed.
  if (rec.pending?.migration?.phase === 'taking-over' && takenImages(cookieOf(rec)).length > 0) {
    await takeOver(env, rec);
    await env.withQmp(rec, (q) => q.execute('cont'));
    env.store.updateRunning(rec.uuid, { paused: false });
    env.store.endOp(rec.uuid);
    return;
  }
  await abortIncoming(env, rec);
}
