/**
 * The destination's two steps of a migration (libvirt's Prepare and Finish, version 3).
 * Prepare starts QEMU waiting for the stream (`-incoming defer`) under labels of this host
 * (fresh dynamic ones, or the same static ones), with every file labelled but the shared
 * images: those are opened and handed to QEMU as fds, still the source's. Finish waits for
 * the state, takes the images (the handover's commit point), then lets the guest run.
 */
import { networkInterfaces } from 'node:os';
import type { DomainDef } from '../../domain/domain-def.js';
import { formatDomainXml, parseDomainXml } from '../../domain/index.js';
import { SvirtError } from '../../errors.js';
import { withHandle } from '../../host/file-handle.js';
import type { GuestResource } from '../../security/driver.js';
import type { PendingOp, RunningRecord } from '../../store/store.js';
import { crashPoint } from '../crash-points.js';
import type { LifecycleEnv } from '../env.js';
import { startGuest } from '../start.js';
import { destroyGuest } from '../stop.js';
import { decodeCookie, giveBack, handedOver, imageState, sameHolder, takenImages, type MigrationCookie } from './handover.js';
import { assertProfileFree } from './apparmor-handover.js';
import { attachImages, attachLaterFor } from './attach-later.js';
import { streamEnd } from './stream-end.js';
import { listenOnce, type Listener } from './transfer.js';

export interface Prepared {
  readonly rec: RunningRecord;
  /** tcp:ADDR:PORT, where the source's svirt connects. */
  readonly uri: string;
  /** Settles once the stream is connected and handed to QEMU (or failed/timed out). */
  readonly streaming: Promise<void>;
  readonly listener: Listener;
}

/** The address the stream is received on: asked for, or this host's first non-loopback IPv4. */
export function streamAddress(asked: string | undefined): string {
  if (asked !== undefined && asked !== '') return asked;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

/**
 * Prepare: the guest from the source's XML (generated labels dropped: this host makes its
 * own), started paused and waiting, journalled as an incoming migration, and a listener for
 * the stream. `acceptMs` bounds the wait for the source's connection. `paused`: the guest is
 * to stay paused after Finish (`--paused`): see `activatableAtLoad`.
 */
export async function migratePrepare(
  env: LifecycleEnv,
  xml: string,
  cookieBytes: Buffer,
  opts: { listen?: string; acceptMs?: number; paused?: boolean } = {},
): Promise<Prepared> {
  const def: DomainDef = parseDomainXml(xml, { inactive: true });
  const cookie = decodeCookie(cookieBytes, def.uuid);
  if (env.store.getRunning(def.uuid))
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${def.name}' already runs on this host`);
  const persistent = env.store.getDefinedByUuid(def.uuid) !== undefined;
  assertProfileFree(def, env.manager.names);
  const addr = streamAddress(opts.listen);
  const listener = await listenOnce(addr, opts.acceptMs ?? 60_000);
  let rec: RunningRecord;
  try {
    rec = await startGuest(env, def, persistent, true, undefined, {
      labelLater: handedOver,
      attachLater:
        opts.paused === true ? activatableAtLoad(attachLaterFor(env.manager.names)) : attachLaterFor(env.manager.names),
    });
  } catch (err) {
    listener.close();
    throw err;
  }
  try {
    checkImages(rec.resources, cookie);
    const op: PendingOp = { op: 'migrate-in', migration: { phase: 'prepared', cookie: JSON.stringify(cookie) } };
    if (!env.store.beginOp(rec.uuid, op, env.me))
      throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${def.name}' is busy`);
    crashPoint('migrate-in:prepared');
  } catch (err) {
    listener.close();
    await destroyGuest(env, rec.uuid, 0);
    throw err;
  }
  const streaming = listener.accepted.then(async (sock) => {
    const live = parseDomainXml(rec.liveXml);
    const end = streamEnd(sock, env.manager.hasLiveLabels(live) ? env.manager.socketLabels(live)?.listen : undefined);
    try {
      await env.withQmp(rec, async (q) => {
        // Images stay inactive until `cont`, which comes after the take-over (docs/migration.md);
        // for a guest to stay paused they are activated at load, behind their placeholders.
        await q.execute('migrate-set-capabilities', {
          capabilities: [{ capability: 'late-block-activate', state: opts.paused !== true }],
        });
        await q.executeWithFds('getfd', { fdname: 'svirt-migrate' }, [end.fd]);
        await q.execute('migrate-incoming', { uri: 'fd:svirt-migrate' });
      });
    } catch (err) {
      end.abort();
      throw err;
    }
    end.handedOver();
  });
  streaming.catch(() => undefined); // Finish (or the abort) reports it
  return { rec, uri: `tcp:${addr.includes(':') ? `[${addr}]` : addr}:${listener.port}`, streaming, listener };
}

/**
 * A guest to stay paused after Finish never gets `cont`, the only thing that activates images
 * held back by `late-block-activate`; QEMU 7.2 has no other (no `blockdev-set-active`), and it
 * aborts when it migrates out images it never activated (block.c bdrv_inactivate_recurse):
 * the guest would be lost on both hosts at its next migration. So such a guest's images are
 * activated as QEMU finishes loading the state (`late-block-activate` off), which keeps the
 * handover order only while each handed-over image is still behind its placeholder then (a
 * raw regular file: src/lifecycle/migrate/attach-later.ts): QEMU activates `null-co`, reaches
 * nothing of the file, and gets the file at Finish, after the take-over, as an active node.
 * An image with its fd from exec (a qcow2, a chain, a block device, under `dac`/`landlock`)
 * would be activated (locked, its header maybe rewritten) before the destination owns it:
 * refused in one line as Prepare opens it, before QEMU starts or the source sends anything.
 */
function activatableAtLoad(attachLater: (r: GuestResource) => boolean): (r: GuestResource) => boolean {
  return (r) => {
    const later = attachLater(r);
    if (handedOver(r) && !later) {
      throw new SvirtError(
        'SVIRT_ERR_MIGRATE',
        `"${r.path}": --paused migrates only raw regular-file images here (${r.disk?.format ?? '?'} ${r.handle?.kind ?? '?'} would stay inactive and the guest could not migrate again); migrate it without --paused`,
      );
    }
    return later;
  };
}

/** Every image handed over must be one the source described: the same file (device, inode). */
function checkImages(resources: readonly GuestResource[], cookie: MigrationCookie): void {
  for (const r of resources.filter(handedOver)) {
    const img = cookie.images.find((i) => i.path === r.path);
    if (!img || r.ident === undefined || r.ident.dev !== img.dev || r.ident.ino !== img.ino) {
      throw new SvirtError(
        'SVIRT_ERR_MIGRATE',
        `"${r.path}" is not the image the source runs: the hosts do not share this storage (use --copy-storage-all)`,
      );
    }
  }
}

/**
 * Finish: `cancelled` (the source failed or gave up): the guest goes, no image was touched.
 * Otherwise: wait until QEMU has the whole state, take every image, then run (unless
 * `paused`). A failure before the guest runs gives back what was taken and ends the guest here.
 */
export async function migrateFinish(
  env: LifecycleEnv,
  uuid: string,
  cancelled: boolean,
  opts: { streaming?: Promise<void>; paused?: boolean; persistXml?: string; timeoutMs?: number } = {},
): Promise<RunningRecord | undefined> {
  const rec = env.store.getRunning(uuid);
  if (!rec?.pending || rec.pending.op !== 'migrate-in') {
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `guest ${uuid} is not being migrated to this host`);
  }
  if (cancelled) {
    await abortIncoming(env, rec);
    return undefined;
  }
  try {
    await opts.streaming;
    await waitLoaded(env, rec, opts.timeoutMs ?? 60_000);
    crashPoint('migrate-in:loaded');
  } catch (err) {
    await abortIncoming(env, rec);
    throw err;
  }
  await takeOver(env, rec);
  await env.withQmp(rec, async (q) => {
    if (opts.paused !== true) await q.execute('cont');
  });
  env.store.updateRunning(uuid, { paused: opts.paused === true });
  env.store.endOp(uuid);
  crashPoint('migrate-in:resumed');
  if (opts.persistXml !== undefined) {
    const def = parseDomainXml(opts.persistXml, { inactive: true });
    if (def.uuid !== uuid) throw new SvirtError('SVIRT_ERR_MIGRATE', 'the persistent XML names another guest');
    env.store.putDefinition({ uuid, name: def.name, xml: formatDomainXml(def) });
  }
  return env.store.getRunning(uuid);
}

async function waitLoaded(env: LifecycleEnv, rec: RunningRecord, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  await env.withQmp(rec, async (q) => {
    for (;;) {
      const st = (await q.execute('query-migrate')) as { status?: string; 'error-desc'?: string };
      if (st.status === 'completed') return;
      if (st.status === 'failed' || st.status === 'cancelled') {
        throw new SvirtError('SVIRT_ERR_MIGRATE', `receiving '${rec.name}' failed: ${st['error-desc'] ?? st.status}`);
      }
      if (Date.now() > deadline)
        throw new SvirtError('SVIRT_ERR_TIMEOUT', `the state of '${rec.name}' did not arrive within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 25));
    }
  });
}

/**
 * The commit point. Journalled first; then image by image: the same file, still exactly as
 * the source holds it, its originals remembered here, labelled for this guest. If one cannot
 * be taken, those taken go back to the source's owner and label, and the guest ends here.
 */
async function takeOver(env: LifecycleEnv, rec: RunningRecord): Promise<void> {
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
      withHandle(r, 'take over', (h) => {
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
        manager.setResourceLabel(live, { ...r, handle: h }, ctx);
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
async function abortIncoming(env: LifecycleEnv, rec: RunningRecord): Promise<void> {
  const text = rec.pending?.migration?.cookie;
  if (text !== undefined) {
    const cookie = decodeCookie(Buffer.from(text, 'utf8'), rec.uuid);
    const taken = new Set(takenImages(cookie).map((i) => i.path));
    for (const r of rec.resources.filter(handedOver)) {
      const img = cookie.images.find((i) => i.path === r.path);
      if (img && taken.has(r.path)) withHandle(r, 'give back', (h) => giveBack(h, img.state));
      for (const d of rec.stack) if (env.store.release(d, r.path, rec.uuid) !== undefined) env.store.forget(d, r.path);
    }
  }
  env.store.endOp(rec.uuid);
  await destroyGuest(env, rec.uuid, 0);
}

function cookieOf(rec: RunningRecord): MigrationCookie {
  return decodeCookie(Buffer.from(rec.pending?.migration?.cookie ?? '', 'utf8'), rec.uuid);
}

/** The reconcile's repair of a destination whose process died: before the commit point the guest goes; after, it runs. */
export async function repairMigrationIn(env: LifecycleEnv, rec: RunningRecord): Promise<void> {
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
