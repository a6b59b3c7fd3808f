/**
 * Hot-plug of a passt NIC (attach-interface NAME user on a running guest) and its unplug.
 * Like a start's passt (nics.ts), but for the live guest under the stack it was started
 * with: the helper's log is journalled in the pending operation and labelled for the guest,
 * the socketpair is made at the guest's socket label, passt is started confined (journalled
 * in the running record before it is spawned) and waited for until it has sandboxed itself,
 * and QEMU gets its end by `getfd` for `netdev_add socket fd=NAME` (the framing of a start's
 * stream netdev; a stream netdev cannot take a getfd name, netdev-args.ts says why). The repair of the
 * NIC operation (nic-plug.ts repairNicOp) ends that helper and gives its log's label back, so
 * a failure or a crash at any step leaves no passt, no label and no record behind.
 */
import { join } from 'node:path';
import { parseDomainXml, type DomainDef, type InterfaceDef } from '../domain/index.js';
import { passtHelperIdOf } from '../network/passt.js';
import type { NicBackend } from '../qemu/netdev-args.js';
import type { GuestResource } from '../security/driver.js';
import type { PendingOp, RunningRecord } from '../store/store.js';
import { LifecycleEnv } from './env.js';
import type { OpenFiles } from './files.js';
import { endHelpers } from './helper-end.js';
import { startHelpers } from './helpers.js';
import { passtPlug, passtSandboxed } from './nics.js';
import { UndoStack } from './undo.js';

/** The lifecycle ports with the stack the running guest was started with (not today's). */
async function guestEnv(env: LifecycleEnv, rec: RunningRecord): Promise<LifecycleEnv> {
  const manager = await env.managerFor(rec);
  if (manager === env.manager) return env;
  return new LifecycleEnv({
    paths: env.paths,
    store: env.store,
    manager,
    config: env.config,
    startTimeoutMs: env.startTimeoutMs,
    warn: env.warn,
  });
}

/**
 * Starts the passt of NIC `nic` (alias set) for the running guest: its log journalled in the
 * operation and labelled first, then the confined helper, until it has sandboxed itself.
 * Returns QEMU's end of the socketpair (in `files`, which the caller closes once QEMU has it)
 * and the operation as journalled. On error the caller runs repairNicOp, which ends it.
 */
export async function startPasst(
  env: LifecycleEnv,
  rec: RunningRecord,
  live: DomainDef,
  nic: InterfaceDef,
  op: PendingOp,
  files: OpenFiles,
): Promise<{ backend: NicBackend; qemuFd: number; op: PendingOp }> {
  const genv = await guestEnv(env, rec);
  const what = `domain '${live.name}' interface ${nic.alias ?? ''}`;
  const p = passtPlug(genv, live, nic, files, what);
  const fdname = `passtfd-${op.device ?? ''}`;
  const journalled: PendingOp = { ...op, fdnames: [fdname], resources: [p.request.log.resource] };
  env.store.updateOp(rec.uuid, journalled);
  const ctx = env.context(live, rec.runtimeDir);
  await genv.manager.setResourceLabel(live, p.request.log.resource, ctx);
  // startHelpers' own undo would end all the guest's helpers: repairNicOp ends this one instead.
  const [h] = await startHelpers(genv, live, ctx, [p.request], new UndoStack());
  if (h !== undefined) await passtSandboxed(h, p.request.log.path, `passt helper ${h.id} of '${live.name}'`);
  return { backend: { kind: 'socket', fd: fdname }, qemuFd: p.qemuFd, op: journalled };
}

/** The labelled log of the passt behind device `alias` (what a detach gives back). */
export function passtLogOf(env: LifecycleEnv, rec: RunningRecord, alias: string): GuestResource[] {
  const path = join(env.logDir(), `${rec.name}-${passtHelperIdOf(alias)}.log`);
  return rec.resources.filter((r) => r.role === 'helper-log' && r.path === path);
}

/**
 * The passt side of a NIC operation's repair: ends the helper behind the device, if there is
 * one (it has usually exited already, when QEMU's end closed), and gives back the labels of
 * the files the operation journalled. Returns the guest's resources without them, or
 * undefined when the operation journalled none.
 */
export async function releasePasst(env: LifecycleEnv, rec: RunningRecord, op: PendingOp): Promise<GuestResource[] | undefined> {
  if (op.device !== undefined) await endHelpers(env, rec.uuid, passtHelperIdOf(op.device));
  const resources = op.resources ?? [];
  if (resources.length === 0) return undefined;
  const live = parseDomainXml(rec.liveXml);
  const ctx = env.context(live, rec.runtimeDir);
  const manager = await env.managerFor(rec);
  for (const r of resources) await manager.restoreResourceLabel(live, r, ctx);
  return rec.resources.filter((r) => !resources.some((x) => x.path === r.path));
}
