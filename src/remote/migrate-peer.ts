/**
 * A migration driven from the source (`svirt migrate`, and `virsh migrate --p2p` through
 * serve): libvirt's version 3 sequence with params, the source's steps in this process and
 * the destination's through its serve — Begin here, Prepare there, Perform here, Finish
 * there, Confirm here. A failure at any step ends in the same two calls: the destination's
 * Finish with `cancelled` (its guest goes, nothing of the images touched) and the source's
 * Confirm with `cancelled` (the guest runs on here).
 */
import type { LifecycleEnv } from '../lifecycle/env.js';
import type { Guest } from '../lifecycle/guest.js';
import {
  migrateBegin,
  markFinishing,
  migrateConfirm,
  migratePerform,
  type MigrationProgress,
  type StreamStats,
} from '../lifecycle/migrate/source.js';
import { RemoteClient, socketOfUri } from './client.js';
import { Proc, readOptString, readDomain, type WireDomain } from './protocol.js';
import { writeTypedParams, type TypedValue } from './typed-params.js';
import { COOKIE_MAX } from '../lifecycle/migrate/handover.js';
import { SvirtError } from '../errors.js';

/** VIR_MIGRATE_* bits svirt acts on. */
export const MigrateFlag = {
  LIVE: 1,
  PEER2PEER: 2,
  TUNNELLED: 4,
  PERSIST_DEST: 8,
  UNDEFINE_SOURCE: 16,
  PAUSED: 32,
  NON_SHARED_DISK: 64,
  NON_SHARED_INC: 128,
  CHANGE_PROTECTION: 256,
  UNSAFE: 512,
  OFFLINE: 1024,
  ABORT_ON_ERROR: 4096,
  AUTO_CONVERGE: 8192,
} as const;

/** Bits svirt acts on, or accepts without meaning anything more here (its migration is always protected, never tunnelled). */
export const MIGRATE_FLAGS_OK =
  MigrateFlag.LIVE |
  MigrateFlag.PEER2PEER |
  MigrateFlag.PERSIST_DEST |
  MigrateFlag.UNDEFINE_SOURCE |
  MigrateFlag.PAUSED |
  MigrateFlag.NON_SHARED_DISK |
  MigrateFlag.CHANGE_PROTECTION |
  MigrateFlag.UNSAFE |
  MigrateFlag.OFFLINE |
  MigrateFlag.ABORT_ON_ERROR |
  MigrateFlag.AUTO_CONVERGE;

export interface PeerMigration {
  readonly flags: number;
  /** Where the destination receives the stream (VIR_MIGRATE_PARAM_URI), when not its own choice. */
  readonly migrateUri?: string;
  readonly listenAddress?: string;
  /** The definition the destination starts (virsh's --xml): the same guest, host-specific paths changed. */
  readonly destXml?: string;
  readonly progress?: MigrationProgress;
  /** The default socket of a qemu:// URI without one. */
  readonly defaultSocket: string;
}

/** The guest migrated to `destUri`'s serve; resolves with the destination's word on it. */
export async function migrateToPeer(
  env: LifecycleEnv,
  guest: Guest,
  destUri: string,
  m: PeerMigration,
): Promise<{ dom: WireDomain; stream?: StreamStats }> {
  const offline = (m.flags & MigrateFlag.OFFLINE) !== 0;
  const copyStorage = (m.flags & MigrateFlag.NON_SHARED_DISK) !== 0;
  const begun = migrateBegin(env, guest, { offline, copyStorage });
  const dest = await RemoteClient.open(socketOfUri(destUri, m.defaultSocket));
  try {
    const params = new Map<string, TypedValue>([
      ['destination_xml', m.destXml ?? begun.xml],
      ['destination_name', guest.name],
    ]);
    if (m.migrateUri !== undefined) params.set('migrate_uri', m.migrateUri);
    if (m.listenAddress !== undefined) params.set('listen_address', m.listenAddress);
    const prep = await dest.call(Proc.DomainMigratePrepare3Params, (w) => {
      writeTypedParams(w, params);
      w.opaqueVar(begun.cookie, COOKIE_MAX).uint(m.flags);
    });
    const cookie = prep.opaqueVar(COOKIE_MAX);
    const uri = readOptString(prep);
    let failure: unknown;
    /** Finish sent and its answer lost: whether the destination runs the guest is unknown. */
    let unanswered = false;
    let stream: StreamStats | undefined;
    if (!offline) {
      try {
        if (uri === undefined) throw new Error('the destination gave no migration URI');
        // Prepare's cookie: with --copy-storage-all it says where the destination's export listens.
        stream = await migratePerform(env, guest, uri, cookie, {
          live: (m.flags & MigrateFlag.LIVE) !== 0,
          copyStorage,
          ...(m.progress ? { progress: m.progress } : {}),
        });
      } catch (err) {
        failure = err;
      }
    }
    if (!offline && failure === undefined) markFinishing(env, guest.uuid);
    const finishParams = new Map<string, TypedValue>([['destination_name', guest.name]]);
    if (uri !== undefined) finishParams.set('migrate_uri', uri);
    let dom: WireDomain | undefined;
    try {
      const fin = await dest.call(
        Proc.DomainMigrateFinish3Params,
        (w) => {
          writeTypedParams(w, finishParams);
          w.opaqueVar(cookie, COOKIE_MAX)
            .uint(m.flags)
            .int(failure === undefined ? 0 : 1);
        },
        120_000,
      );
      dom = readDomain(fin);
    } catch (err) {
      unanswered = failure === undefined && !(err instanceof SvirtError && typeof err.details['code'] === 'number');
      failure ??= err;
    }
    if (!offline) {
      // The images decide whether a cancelled Confirm resumes or ends the source (source.ts); with
      // copied disks none shows it, and a Finish whose answer was lost leaves the source paused.
      await migrateConfirm(env, guest.uuid, failure !== undefined, { unknown: unanswered && copyStorage });
    }
    if (failure !== undefined) throw failure;
    if (!dom) throw new Error('the destination did not name the guest');
    return { dom, ...(stream ? { stream } : {}) };
  } finally {
    dest.close();
  }
}
