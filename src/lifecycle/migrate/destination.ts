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
import type { GuestResource } from '../../security/driver.js';
import type { PendingOp, RunningRecord } from '../../store/store.js';
import { crashPoint } from '../crash-points.js';
import type { LifecycleEnv } from '../env.js';
import { startGuest } from '../start.js';
import { decodeCookie, encodeCookie, handedOver, type MigrationCookie } from './handover.js';
import { bootId } from './copy-storage.js';
import { copyOf, exportDisks, NOTHING_HANDED_OVER, unexportDisks } from './copy-incoming.js';
import { prepareDestImages, removeCreated } from './dest-images.js';
import { abortIncoming, cookieOf, takeOver } from './incoming-end.js';
import type { NbdRelay } from './nbd-export.js';
import { assertProfileFree } from './apparmor-handover.js';
import { attachLaterFor } from './attach-later.js';
import { streamEnd } from './stream-end.js';
import { listenOnce, type Listener } from './transfer.js';

export interface Prepared {
  readonly rec: RunningRecord;
  /** tcp:ADDR:PORT, where the source's svirt connects. */
  readonly uri: string;
  /** Settles once the stream is connected and handed to QEMU (or failed/timed out). */
  readonly streaming: Promise<void>;
  readonly listener: Listener;
  /** The cookie for the source's Perform (with `--copy-storage-all`: where the export listens, and its token). */
  readonly cookie: Buffer;
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
  opts: { listen?: string; acceptMs?: number; paused?: boolean; copyStorage?: boolean } = {},
): Promise<Prepared> {
  const def: DomainDef = parseDomainXml(xml, { inactive: true });
  const cookie = decodeCookie(cookieBytes, def.uuid);
  const copy = copyOf(cookie, opts.copyStorage === true, opts.paused === true);
  if (env.store.getRunning(def.uuid))
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${def.name}' already runs on this host`);
  const persistent = env.store.getDefinedByUuid(def.uuid) !== undefined;
  assertProfileFree(def, env.manager.names);
  const addr = streamAddress(opts.listen);
  // --copy-storage-all: this host's own images, checked or created before anything starts (dest-images.ts).
  const created = copy ? await prepareDestImages(def, copy, copy.boot === bootId()) : [];
  let listener: Listener;
  let rec: RunningRecord;
  try {
    listener = await listenOnce(addr, opts.acceptMs ?? 60_000);
  } catch (err) {
    removeCreated(created);
    throw err;
  }
  try {
    rec = await startGuest(
      env,
      def,
      persistent,
      true,
      undefined,
      copy
        ? NOTHING_HANDED_OVER
        : {
            labelLater: handedOver,
            attachLater:
              opts.paused === true ? activatableAtLoad(attachLaterFor(env.manager.names)) : attachLaterFor(env.manager.names),
          },
    );
  } catch (err) {
    listener.close();
    removeCreated(created);
    throw err;
  }
  let relay: NbdRelay | undefined;
  let reply = cookieBytes;
  try {
    if (!copy) checkImages(rec.resources, cookie);
    const journalled: MigrationCookie = copy ? { ...cookie, copy: { ...copy, created } } : cookie;
    const op: PendingOp = { op: 'migrate-in', migration: { phase: 'prepared', cookie: JSON.stringify(journalled) } };
    if (!env.store.beginOp(rec.uuid, op, env.me))
      throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${def.name}' is busy`);
    crashPoint('migrate-in:prepared');
    if (copy) {
      relay = await exportDisks(env, rec, copy, addr, opts.acceptMs ?? 60_000);
      reply = encodeCookie({
        ...cookie,
        copy: { boot: copy.boot, disks: copy.disks, nbd: { port: relay.port, token: relay.token } },
      });
      crashPoint('migrate-in:exported');
    }
  } catch (err) {
    listener.close();
    relay?.close();
    await abortIncoming(env, env.store.getRunning(rec.uuid) ?? rec);
    removeCreated(created);
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
  const both: Listener = {
    port: listener.port,
    accepted: listener.accepted,
    close() {
      listener.close();
      relay?.close();
    },
  };
  return {
    rec,
    uri: `tcp:${addr.includes(':') ? `[${addr}]` : addr}:${listener.port}`,
    streaming,
    listener: both,
    cookie: reply,
  };
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
  const copy = cookieOf(rec).copy;
  if (copy) {
    try {
      await unexportDisks(env, rec, copy);
    } catch (err) {
      await abortIncoming(env, env.store.getRunning(rec.uuid) ?? rec);
      throw err;
    }
    crashPoint('migrate-in:unexported');
  } else await takeOver(env, rec);
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
