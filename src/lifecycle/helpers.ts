/**
 * Helper processes: programs svirt runs beside a guest's QEMU for its devices (swtpm,
 * virtiofsd, passt), each under the guest's confinement as every driver of the stack derives
 * it (SecurityDriver.helperConfinement), launched by svirt-exec like QEMU, journalled in the
 * running record before it is spawned and ended (by pid + start time) with its guest.
 *
 * A device that runs a helper does two things in start (docs/lifecycle.md):
 *  1. before the guest's files are labelled: `openHelperLog` for each helper, and the log's
 *     resource goes in the list of files to label (the log is labelled like QEMU's);
 *  2. after labelling, before QEMU is launched: `startHelpers`, which pushes the undo that
 *     ends them. Whatever fds the helper needs (a socketpair end, a listening socket) the
 *     device opens and passes in the request's FdLayout; QEMU gets the other ends.
 */
import { constants, lstatSync, openSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import type { DomainDef } from '../domain/domain-def.js';
import { SvirtError } from '../errors.js';
import { svirtExecPath } from '../host/native.js';
import { processStartTime } from '../host/proc.js';
import { childSocket, spawnProgram } from '../host/spawn.js';
import { SPEC_FD, type FdLayout } from '../qemu/fd-layout.js';
import { EXEC_STEPS, guestEnvironment, logTail } from '../qemu/launcher.js';
import type { GuestResource, SecurityContext } from '../security/driver.js';
import { assertHelperId, type HelperSpec } from '../security/helper.js';
import type { HelperRecord } from '../store/store.js';
import { crashPoint } from './crash-points.js';
import { confineHelper, type ConfinedHelper } from './helper-confine.js';
import { endHelpers } from './helper-end.js';
import type { LifecycleEnv } from './env.js';
import type { OpenFiles } from './files.js';
import type { UndoStack } from './undo.js';
import { randomBytes } from '../host/random.js';

/** When a helper counts as started. */
export type HelperReady =
  /** Once the program itself runs (svirt-exec applied the spec and exec'd it). */
  | { readonly kind: 'exec' }
  /** Once a UNIX socket exists at `path` (the helper bound it). */
  | { readonly kind: 'socket'; readonly path: string }
  /** Once a non-empty regular file exists at `path` (swtpm's pid file, written when it is up). */
  | { readonly kind: 'file'; readonly path: string }
  /** A one-shot program (swtpm_setup): done when it exits with status 0. */
  | { readonly kind: 'exit' };

/** A helper's log: svirt's file in the guest's log dir, which the helper gets as stdout and stderr. */
export interface HelperLog {
  readonly path: string;
  readonly fd: number;
  /** Add it to the guest's resources before labelling, so it is labelled (and given back) like QEMU's log. */
  readonly resource: GuestResource;
}

export interface HelperRequest {
  /** What the drivers confine: kind, id, program, paths, ports (its `log` is filled in from `log`). */
  readonly spec: HelperSpec;
  /** argv[0] is `spec.binary`. */
  readonly argv: readonly string[];
  readonly log: HelperLog;
  /** fds the helper inherits, numbered from 4 in the order added (FdLayout). */
  readonly layout?: FdLayout;
  /** Extra environment (the helper otherwise gets the fixed environment QEMU gets). */
  readonly env?: Readonly<Record<string, string>>;
  readonly ready: HelperReady;
  /** Default: the guest's start timeout. */
  readonly timeoutMs?: number;
}

/** A helper that runs (one-shot helpers are not returned: they have ended). */
export interface RunningHelper {
  readonly kind: string;
  readonly id: string;
  readonly pid: number;
  readonly startTime: number;
}

/** A device prepared before labelling: the files to label, then its helpers' start. */
export interface PreparedDevice {
  readonly resources: readonly GuestResource[];
  /** Starts the helpers (after labelling, before QEMU); adds QEMU's fds to `layout`; returns QEMU's argv. */
  start(ctx: SecurityContext, layout: FdLayout, undo: UndoStack): Promise<string[]>;
}

/** `<logdir>/<guest>-<id>.log`, opened once (truncated, root's, 0600, no symlink followed). */
export function openHelperLog(env: LifecycleEnv, def: DomainDef, id: string, files: OpenFiles): HelperLog {
  assertHelperId(id);
  const path = join(env.logDir(), `${def.name}-${id}.log`);
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    throw new SvirtError('SVIRT_ERR_HELPER', `cannot open the log "${path}" of helper ${id}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return { path, fd: files.fd(fd), resource: { path, role: 'helper-log', seclabels: [] } };
}

/**
 * Starts the helpers of a guest, in order, each confined as the stack derives it from the
 * guest's live labels, and pushes on `undo` the step that ends them. Each is journalled in
 * the running record before it is spawned (so a crash leaves it findable) and completed with
 * its pid and start time. A helper that cannot be confined is refused (SVIRT_ERR_CONFINE,
 * the program never runs); one that exits before it is ready fails the start with the tail
 * of its log (SVIRT_ERR_HELPER). The caller keeps and closes its own copies of the fds.
 */
export async function startHelpers(
  env: LifecycleEnv,
  live: DomainDef,
  ctx: SecurityContext,
  requests: readonly HelperRequest[],
  undo: UndoStack,
): Promise<RunningHelper[]> {
  if (requests.length === 0) return [];
  undo.push('end the helper processes', () => endHelpers(env, live.uuid));
  const out: RunningHelper[] = [];
  for (const req of requests) {
    const started = await waitReady(env, live, req, spawnOne(env, live, await confineHelper(env, live, ctx, req)));
    if (started) out.push(started);
  }
  return out;
}

/**
 * Like startHelpers, for helpers that depend on nothing but their fds (passt): each is
 * journalled and spawned now, and the returned function waits until all are ready. The
 * caller launches QEMU in between, so the two start side by side; it must call the function
 * (or let the undo end the helpers) before it counts the start done. Nothing is awaited
 * before the call, so a failed launch leaves no pending promise behind.
 */
export function spawnHelpers(
  env: LifecycleEnv,
  live: DomainDef,
  helpers: readonly ConfinedHelper<HelperRequest>[],
  undo: UndoStack,
): () => Promise<RunningHelper[]> {
  if (helpers.length === 0) return () => Promise.resolve([]);
  undo.push('end the helper processes', () => endHelpers(env, live.uuid));
  const spawned = helpers.map((h) => {
    const req = h.req;
    if (req.ready.kind === 'exit') {
      throw new SvirtError('SVIRT_ERR_INTERNAL', `helper ${req.spec.id}: a one-shot helper cannot start beside QEMU`);
    }
    return { req, waiting: spawnOne(env, live, h) };
  });
  return async () => {
    const out: RunningHelper[] = [];
    for (const { req, waiting } of spawned) {
      const started = await waitReady(env, live, req, waiting);
      if (started) out.push(started);
    }
    return out;
  };
}

/** Journals and spawns one helper under its confinement (confineHelper); waitReady says when it is up. */
function spawnOne(env: LifecycleEnv, live: DomainDef, { req, spec }: ConfinedHelper<HelperRequest>): Waiting {
  const { kind, id } = req.spec;
  const layout = req.layout;
  const token = `${live.uuid}/${id}/${randomBytes(16).toString('hex')}`;
  setHelper(env, live.uuid, { kind, id, token, pid: null, startTime: null });
  crashPoint('start:helper-journaled');
  let exit: string | undefined;
  const specIn = childSocket();
  let pid: number;
  try {
    pid = spawnProgram(svirtExecPath(), {
      args: ['--spec-fd', String(SPEC_FD), '--', ...req.argv],
      detached: true,
      fds: ['ignore', req.log.fd, req.log.fd, specIn.child, ...layout.fds],
      env: { ...guestEnvironment(process.env), ...req.env, SVIRT_HELPER: token },
      onExit: (status) => (exit = status),
    });
  } catch (err) {
    // svirt-exec itself could not run (ENOENT, EACCES): reported by waitReady, like every helper's failure
    specIn.close();
    const spawnError = Promise.resolve(err instanceof Error ? err : new Error(String(err)));
    return { pid: 0, startTime: 0, what: `helper ${id}`, exited: () => exit, spawnError };
  }
  specIn.spawned();
  specIn.feed(JSON.stringify(spec));
  const startTime = processStartTime(pid) ?? 0;
  setHelper(env, live.uuid, { kind, id, token, pid, startTime });
  const what = `${kind} helper ${id} of '${live.name}'`;
  return { pid, startTime, what, exited: () => exit };
}

interface Waiting {
  readonly pid: number;
  readonly startTime: number;
  readonly what: string;
  readonly exited: () => string | undefined;
  /** Set when svirt-exec could not be run at all (no pid). */
  readonly spawnError?: Promise<Error>;
}

async function waitReady(env: LifecycleEnv, live: DomainDef, req: HelperRequest, w: Waiting): Promise<RunningHelper | undefined> {
  const { kind, id } = req.spec;
  const { pid, startTime, what } = w;
  if (w.spawnError) {
    const err = await w.spawnError;
    throw new SvirtError('SVIRT_ERR_NATIVE', `cannot run svirt-exec for helper ${id}: ${err.message}`, { cause: err });
  }
  const deadline = Date.now() + (req.timeoutMs ?? env.startTimeoutMs);
  const launcher = realpathSync(svirtExecPath());
  for (;;) {
    const exit = w.exited();
    if (exit !== undefined) {
      if (req.ready.kind === 'exit' && exit === 'exit 0') {
        dropHelper(env, live.uuid, id);
        return undefined;
      }
      throw exitError(what, exit, req.log.path);
    }
    if (req.ready.kind !== 'exit' && running(pid, launcher)) {
      const ready = req.ready;
      if (ready.kind === 'exec' || present(ready.path, ready.kind)) return { kind, id, pid, startTime };
    }
    if (Date.now() > deadline) {
      throw new SvirtError('SVIRT_ERR_TIMEOUT', `${what} was not ready within ${req.timeoutMs ?? env.startTimeoutMs} ms`, {
        details: { pid, log: logTail(req.log.path) },
      });
    }
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** The program itself runs: the launcher has exec'd it (its /proc exe is no longer svirt-exec). */
function running(pid: number, launcher: string): boolean {
  try {
    return readlinkSync(`/proc/${pid}/exe`) !== launcher;
  } catch {
    return false; // gone, or not yet readable: the exit event or the next look says which
  }
}

function present(path: string, kind: 'socket' | 'file'): boolean {
  try {
    const st = lstatSync(path);
    return kind === 'socket' ? st.isSocket() : st.isFile() && st.size > 0;
  } catch {
    return false; // not made yet
  }
}

function exitError(what: string, status: string, logPath: string): SvirtError {
  const tail = logTail(logPath);
  const code = /^exit (\d+)$/.exec(status);
  const step = code ? EXEC_STEPS[Number(code[1])] : undefined;
  const lines = tail.split('\n').filter((l) => l.trim() !== '');
  if (step !== undefined) {
    const line = [...lines].reverse().find((l) => l.startsWith('svirt-exec: '));
    return new SvirtError('SVIRT_ERR_CONFINE', `${what}: confinement step '${step}' failed: ${line?.slice(12) ?? status}`, {
      details: { step, status, log: tail },
    });
  }
  return new SvirtError('SVIRT_ERR_HELPER', `${what} exited during start (${status}): ${lines.at(-1) ?? ''}`, {
    details: { status, log: tail },
  });
}

function setHelper(env: LifecycleEnv, uuid: string, h: HelperRecord): void {
  env.store.tx(() => {
    const rec = env.store.getRunning(uuid);
    if (!rec) throw new SvirtError('SVIRT_ERR_INTERNAL', `no running record for guest ${uuid}`);
    env.store.updateRunning(uuid, { helpers: [...rec.helpers.filter((x) => x.id !== h.id), h] });
  });
}

function dropHelper(env: LifecycleEnv, uuid: string, id: string): void {
  env.store.tx(() => {
    const rec = env.store.getRunning(uuid);
    if (rec) env.store.updateRunning(uuid, { helpers: rec.helpers.filter((x) => x.id !== id) });
  });
}
