import { chmodSync, closeSync, constants, mkdirSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DomainDef } from './domain/domain-def.js';
import { formatDomainXml } from './domain/index.js';
import { SvirtError, errnoOf } from './errors.js';
import { svirtExecPath, svirtMonitorPath } from './host/native.js';
import type { ProcessIdentity } from './host/proc.js';
import type { Progress } from './hypervisor-state.js';
import type { Hypervisor } from './hypervisor.js';
import { buildArgv, diskKey, type FdSetEntry } from './qemu/argv.js';
import { launch, logTail } from './qemu/launcher.js';
import type { QmpClient } from './qemu/qmp-client.js';
import type { GuestResource, SecurityContext } from './security/driver.js';
import { guestResources, resolvePath, resolveResources, serializeResources } from './security/resources.js';
import type { RunningRecord } from './store/store.js';
import { crashPoint } from './testing/crash-points.js';

/**
 * Starts a guest (DESIGN §3): claim, labels journalled then applied, disks opened, confinement
 * built, QEMU launched under its monitor; any failure undoes every step in reverse.
 */
export async function startGuest(
  hv: Hypervisor,
  def: DomainDef,
  persistent: boolean,
  paused: boolean,
  incoming?: Incoming,
): Promise<RunningRecord> {
  if (!persistent && hv.store.getDefinedByName(def.name)) {
    throw new SvirtError('SVIRT_ERR_DOMAIN_EXISTS', `domain '${def.name}' is already defined; use start`);
  }
  ensureRuntimeRoot(hv);
  const runtimeDir = join(hv.paths.runtimeRoot, def.uuid);
  const qmpPath = join(runtimeDir, 'qmp.sock');
  const claimed = hv.store.insertStarting({
    uuid: def.uuid,
    name: def.name,
    ownerPid: hv.me.pid,
    ownerStart: hv.me.startTime,
    runtimeDir,
    qmpPath,
    liveXml: formatDomainXml(def),
    persistent,
    stack: hv.manager.names,
    resources: '[]',
    startedAt: Date.now(),
  });
  if (!claimed) {
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${def.name}' is already running (or being started or stopped)`);
  }
  crashPoint('start:claimed');
  const ctx = hv.context(def, runtimeDir);
  let live: DomainDef = def;
  let resources: GuestResource[] = [];
  const fds: number[] = [];
  const images: number[] = [];
  let launchedPid: ProcessIdentity | undefined;
  try {
    rmSync(runtimeDir, { recursive: true, force: true });
    mkdirSync(runtimeDir, { mode: 0o700 });
    // QEMU's stderr: opened by svirt, inherited by QEMU, labelled like the guest's other
    // output files (under SELinux an inherited fd QEMU may not write is closed at exec).
    const logPath = join(hv.logDir(), `${def.name}.log`);
    const logFd = openSync(logPath, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
    fds.push(logFd);
    live = hv.manager.genLabels(def, ctx);
    resources = [...resolveResources(guestResources(live, runtimeDir)), { path: logPath, role: 'log', seclabels: [] }];
    const stateFile: GuestResource | undefined = incoming
      ? { path: incoming.path, role: 'saved-state', seclabels: [] }
      : undefined;
    if (stateFile) resources.push(stateFile);
    // Journal first: from here a crash is repaired from what the record says.
    hv.store.updateRunning(def.uuid, { liveXml: formatDomainXml(live), resources: serializeResources(resources) });
    crashPoint('start:labels-reserved');
    hv.manager.setAllLabel(live, resources, ctx);
    crashPoint(incoming ? 'restore:labelled' : 'start:labelled');
    const fdsets = openDisks(live, images);
    const keep = [...fdsets.values()].map((e) => e.fd);
    const argv = buildArgv(live, {
      emulator: ctx.emulator,
      accel: ctx.virtType === 'kvm' ? 'kvm' : 'tcg',
      qmpPath,
      paused: paused || incoming !== undefined,
      fdsets,
    });
    if (incoming) {
      // The saved state comes as one more inherited fd, positioned after the save header.
      keep.push(4 + images.length);
      argv.push('-incoming', `fd:${4 + images.length}`);
    }
    const spec = hv.manager.confinement(live, resources, ctx, keep);
    const launched = await launch({
      monitorPath: svirtMonitorPath(),
      execPath: svirtExecPath(),
      argv,
      spec,
      fds: incoming ? [...images, incoming.fd] : images,
      logFd,
      logPath,
      qmpPath,
      hook: reconcileHook(hv),
      timeoutMs: hv.startTimeoutMs,
    });
    launchedPid = { pid: launched.pid, startTime: launched.startTime };
    try {
      if (incoming) await finishIncoming(launched.qmp, paused, logPath, incoming, launched.pid, 4 + images.length);
    } finally {
      launched.qmp.close();
    }
    if (incoming) crashPoint('restore:loaded');
    crashPoint('start:launched');
    if (stateFile) {
      // The state is loaded: the file goes back to its owner and label before anyone sees the guest run.
      hv.manager.restoreResourceLabel(live, stateFile, ctx);
      resources = resources.filter((r) => r !== stateFile);
      hv.store.updateRunning(def.uuid, { resources: serializeResources(resources) });
    }
    hv.store.tx(() => {
      hv.store.updateRunning(def.uuid, {
        pid: launched.pid,
        pidStart: launched.startTime,
        monitorPid: launched.monitorPid,
        paused,
      });
      hv.store.setRunState(def.uuid, 'running', null);
    });
    const rec = hv.store.getRunning(def.uuid);
    if (!rec) throw new SvirtError('SVIRT_ERR_INTERNAL', `running record of '${def.name}' vanished`);
    return rec;
  } catch (err) {
    if (launchedPid) await hv.kill(launchedPid);
    await killStarting(hv, def.uuid);
    undoStart(hv, live, resources, ctx);
    throw err;
  } finally {
    for (const fd of [...fds, ...images]) closeSync(fd);
  }
}

/** A start that failed after the monitor learned QEMU's pid: make sure nothing of it runs. */
async function killStarting(hv: Hypervisor, uuid: string): Promise<void> {
  const rec = hv.store.getRunning(uuid);
  if (rec?.pid && rec.pidStart) await hv.kill({ pid: rec.pid, startTime: rec.pidStart });
}

function undoStart(hv: Hypervisor, live: DomainDef, resources: readonly GuestResource[], ctx: SecurityContext): void {
  try {
    // No resources: labels were never generated (or none applied), so nothing to restore.
    if (resources.length > 0) hv.manager.restoreAllLabel(live, resources, ctx);
  } catch (restoreErr) {
    // Keep the record: the next command's reconcile retries the restore.
    hv.store.setRunState(live.uuid, 'stopping', null);
    throw restoreErr;
  }
  hv.store.tx(() => {
    hv.store.releaseReservations(live.uuid);
    hv.store.deleteRunning(live.uuid);
  });
  rmSync(ctx.runtimeDir, { recursive: true, force: true });
}

/**
 * Opens every disk layer (O_NOFOLLOW on the resolved path). The k-th fd pushed to `images`
 * becomes fd 4 + k in QEMU (fd 3 carries the spec), which is what the entries name.
 */
function openDisks(def: DomainDef, images: number[]): Map<string, FdSetEntry> {
  const fdsets = new Map<string, FdSetEntry>();
  let set = 1;
  for (const disk of def.disks) {
    if (disk.path === undefined) continue;
    const layers: { path: string; readonly: boolean }[] = [
      { path: disk.path, readonly: disk.readonly || disk.device === 'cdrom' },
    ];
    for (let b = disk.backingStore; b; b = b.backingStore) layers.push({ path: b.path, readonly: true });
    layers.forEach((layer, i) => {
      const real = resolvePath(layer.path);
      let fd: number;
      try {
        const flags = (layer.readonly ? constants.O_RDONLY : constants.O_RDWR) | constants.O_NOFOLLOW; // libuv adds O_CLOEXEC
        fd = openSync(real, flags);
      } catch (err) {
        throw new SvirtError(
          'SVIRT_ERR_QEMU_START',
          `cannot open disk ${disk.target.dev} "${layer.path}": ${errnoOf(err) ?? String(err)}`,
          {
            details: { path: layer.path, errno: errnoOf(err) },
            cause: err,
          },
        );
      }
      images.push(fd);
      fdsets.set(diskKey(disk, i), { fd: 3 + images.length, set, path: real, readonly: layer.readonly });
      set++;
    });
  }
  return fdsets;
}

function reconcileHook(hv: Hypervisor): string[] {
  // dist/src/hypervisor.js → <package>/bin/svirt.js
  const main = fileURLToPath(new URL('../../bin/svirt.js', import.meta.url));
  // The record names the stack to clean up with; the hook itself needs no probing.
  return [process.execPath, main, '--state-dir', hv.paths.stateDir, '--security-driver', 'none', 'reconcile', '--quiet'];
}

function ensureRuntimeRoot(hv: Hypervisor): void {
  mkdirSync(hv.paths.runtimeRoot, { recursive: true, mode: 0o711 });
  // Guest uids must traverse it to reach their own dir (and nothing more: 0711).
  if (hv.paths.system) {
    chmodSync(hv.paths.runtimeRoot, 0o711);
    if (hv.paths.runtimeRoot.startsWith(hv.paths.stateDir + '/')) chmodSync(hv.paths.stateDir, 0o711);
  }
  if (hv.manager.names.includes('dac')) checkTraversable(hv.paths.runtimeRoot);
}

export interface Incoming {
  readonly fd: number;
  readonly path: string;
  /** Reports how far QEMU has read the state file (its offset in the shared file description). */
  readonly progress?: Progress;
  readonly size?: number;
}

/** Waits until QEMU has loaded the incoming state, then lets the guest run unless it stays paused. */
async function finishIncoming(
  q: QmpClient,
  paused: boolean,
  logPath: string,
  incoming: Incoming,
  pid: number,
  qemuFd: number,
): Promise<void> {
  for (;;) {
    if (incoming.progress && incoming.size) incoming.progress(readOffset(pid, qemuFd), incoming.size);
    const st = (await q.execute('query-migrate').catch((err: unknown) => {
      // QEMU exits when the stream does not fit the machine: its log says why.
      const why = logTail(logPath)
        .split('\n')
        .filter((l) => l.includes('qemu-system'))
        .slice(-2)
        .join('; ');
      throw new SvirtError('SVIRT_ERR_QEMU_EXITED', `loading the saved state failed: ${why || String(err)}`, { cause: err });
    })) as { status?: string; 'error-desc'?: string };
    if (st.status === 'completed') break;
    if (st.status === 'failed' || st.status === 'cancelled') {
      throw new SvirtError('SVIRT_ERR_QEMU_START', `loading the saved state failed: ${st['error-desc'] ?? st.status}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  if (!paused) await q.execute('cont');
}

/** The file offset of QEMU's fd N (/proc/PID/fdinfo/N), 0 when it cannot be read. */
function readOffset(pid: number, fd: number): number {
  try {
    return Number(/^pos:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0; // QEMU closed it (done) or exited: the caller learns which from QMP
  }
}

/** Under dac, QEMU runs as a guest uid that must be able to search every dir down to its runtime dir. */
function checkTraversable(dir: string): void {
  for (let d = dir; d !== dirname(d); d = dirname(d)) {
    const st = statSync(d);
    if ((st.mode & 0o001) === 0) {
      throw new SvirtError(
        'SVIRT_ERR_HOST',
        `guest uids cannot reach the runtime dir "${dir}": "${d}" is mode ${(st.mode & 0o777).toString(8).padStart(4, '0')} (needs o+x)`,
        { details: { path: d } },
      );
    }
  }
}
