import { closeSync, constants } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { DomainDef } from '../domain/domain-def.js';
import { parseDomainXml } from '../domain/index.js';
import { SvirtError } from '../errors.js';
import { describeKind, openHandle } from '../host/file-handle.js';
import { resolvePath } from '../security/resources.js';
import type { GuestResource } from '../security/driver.js';
import type { PendingOp, RunningRecord } from '../store/store.js';
import { crashPoint } from './crash-points.js';
import type { LifecycleEnv } from './env.js';
import { SAVE_VERSION, createBeside, readSaveHeader, renameOver, saveKey, unlinkAt, writeHeader } from './save-file.js';
import { requireRunning, type Guest } from './guest.js';
import type { Incoming, Progress } from './incoming.js';
import { destroyGuest } from './stop.js';

/**
 * `save NAME FILE`: QEMU migrates into a new file svirt created (O_EXCL, in the opened target
 * directory) and labelled for the guest; once the state is complete it replaces FILE (as
 * libvirtd does), the guest stops and every label, the file's included, is restored.
 */
export async function saveGuest(env: LifecycleEnv, guest: Guest, file: string, progress?: Progress): Promise<void> {
  const rec = requireRunning(guest);
  // The directory is resolved under the symlink rule; the name itself never is: a link there
  // is refused (createBeside), so a save replaces only a regular file, and only by rename.
  const target = join(resolvePath(dirname(file)), basename(file));
  const made = createBeside(target);
  const resource: GuestResource = { path: made.path, role: 'saved-state', seclabels: [], handle: made.handle };
  const op: PendingOp = {
    op: 'save',
    file: made.path,
    replaces: target,
    wasRunning: !rec.paused,
    resources: [{ path: made.path, role: 'saved-state', seclabels: [], ident: made.handle.identity }],
  };
  if (!env.store.beginOp(rec.uuid, op, env.me)) {
    made.discard();
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${rec.name}' is busy with another operation`);
  }
  crashPoint('save:journaled');
  const live = guest.def;
  const ctx = env.context(live, rec.runtimeDir);
  // The guest's own stack, whatever stack this command was given.
  const manager = await env.managerFor(rec);
  let migrated = false;
  try {
    await manager.setResourceLabel(live, resource, ctx);
    crashPoint('save:labelled');
    writeHeader(
      made.fd,
      {
        version: SAVE_VERSION,
        name: live.name,
        uuid: live.uuid,
        xml: rec.liveXml,
        persistent: rec.persistent,
        paused: rec.paused,
      },
      saveKey(env.paths.stateDir),
    );
    await env.withQmp(rec, async (q) => {
      await q.execute('stop');
      await q.executeWithFds('getfd', { fdname: 'svirt-save' }, [made.fd]);
      await q.execute('migrate', { uri: 'fd:svirt-save' });
      for (;;) {
        const st = (await q.execute('query-migrate')) as {
          status?: string;
          'error-desc'?: string;
          ram?: { transferred?: number; total?: number };
        };
        if (st.ram?.total) progress?.(st.ram.transferred ?? 0, st.ram.total);
        if (st.status === 'completed') break;
        if (st.status === 'failed' || st.status === 'cancelled') {
          throw new SvirtError('SVIRT_ERR_QMP', `saving '${live.name}' failed: ${st['error-desc'] ?? st.status}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    });
    migrated = true;
    crashPoint('save:migrated');
  } catch (err) {
    made.close();
    // Report the save's own error; if the undo fails too, the next reconcile repairs it.
    await repairSave(env, { ...rec, pending: op }, false).catch(() => env.store.abandon(rec.uuid));
    throw err;
  }
  made.close();
  await repairSave(env, { ...rec, pending: op }, migrated);
}

/**
 * Finishes or undoes a save: once QEMU has written the whole state the guest is stopped (its
 * state is in the file, which takes the target's name); otherwise the partial file goes and
 * the guest runs on as before. Either way the file's label is restored.
 */
export async function repairSave(env: LifecycleEnv, rec: RunningRecord, migrated?: boolean): Promise<void> {
  const op = rec.pending;
  if (!op || op.op !== 'save' || op.file === undefined) return;
  const live = parseDomainXml(rec.liveXml);
  const ctx = env.context(live, rec.runtimeDir);
  const manager = await env.managerFor(rec);
  const done =
    migrated ??
    (await env
      .withQmp(rec, async (q) => ((await q.execute('query-migrate')) as { status?: string }).status === 'completed')
      .catch(() => false));
  const [resource] = op.resources ?? [];
  await manager.restoreResourceLabel(live, resource ?? { path: op.file, role: 'saved-state', seclabels: [] }, ctx);
  if (!done) {
    unlinkAt(op.file);
    if (op.wasRunning) await env.withQmp(rec, (q) => q.execute('cont')).catch(() => undefined); // QEMU may be gone: reconcile stops it
    env.store.endOp(rec.uuid);
    return;
  }
  if (op.replaces !== undefined && op.replaces !== op.file) renameOver(op.file, op.replaces);
  env.store.endOp(rec.uuid);
  crashPoint('save:restored');
  await destroyGuest(env, rec.uuid, 0);
}

/**
 * `restore FILE`: starts a guest from a state file with fresh labels. The file is untrusted
 * input: opened once (no symlink on the way, a regular file only), its header checked like a
 * new definition, and its labels never honoured — a guest svirt knows keeps the labels of its
 * stored definition, an unknown one gets dynamic labels only.
 */
export async function restoreGuest(
  env: LifecycleEnv,
  file: string,
  opts: { paused?: boolean; progress?: Progress },
  start: (def: DomainDef, persistent: boolean, paused: boolean, incoming: Incoming) => Promise<RunningRecord>,
): Promise<RunningRecord> {
  const handle = openHandle(resolvePath(file), 'restore from');
  try {
    if (handle.kind !== 'file') {
      throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `cannot restore from "${file}": it is ${describeKind(handle.kind)}`);
    }
    const fd = handle.reopen(constants.O_RDONLY);
    try {
      const header = readSaveHeader(fd, file, saveKey(env.paths.stateDir));
      const def = trustedLabels(env, parseDomainXml(header.xml, { inactive: true }), file);
      const persistent = env.store.getDefinedByUuid(def.uuid) !== undefined;
      return await start(def, persistent, opts.paused ?? header.paused, {
        fd,
        path: handle.path,
        handle,
        ...(opts.progress ? { progress: opts.progress, size: handle.stats.size } : {}),
      });
    } finally {
      closeSync(fd);
    }
  } finally {
    handle.close();
  }
}

/** The definition a save header may start: its labels replaced by what svirt itself trusts. */
function trustedLabels(env: LifecycleEnv, def: DomainDef, file: string): DomainDef {
  const stored = env.store.getDefinedByUuid(def.uuid);
  if (stored) {
    const own = parseDomainXml(stored.xml);
    if (own.name !== def.name) {
      throw new SvirtError(
        'SVIRT_ERR_OPERATION_INVALID',
        `cannot restore from "${file}": its guest '${def.name}' has the uuid of '${own.name}'`,
      );
    }
    return { ...def, seclabels: own.seclabels };
  }
  const asked = def.seclabels.find((l) => l.type === 'static' || l.relabel === false || l.type === 'none');
  if (asked) {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `cannot restore from "${file}": its header asks for a ${asked.type} ${asked.model ?? ''} label` +
        ' (a save file is untrusted input: define the guest with that label first)',
    );
  }
  return def;
}
