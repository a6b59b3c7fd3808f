import { constants, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { DomainDef } from '../domain/domain-def.js';
import { diskLayers, formatDomainXml } from '../domain/index.js';
import { SvirtError } from '../errors.js';
import { unlinkBeneath } from '../host/file-handle.js';
import { removeFile, removeTree } from '../host/files.js';
import { svirtMonitorPath } from '../host/native.js';
import { monitorHook } from './cleanup-hook.js';
import { buildArgv, chardevChanges, type FdSetEntry } from '../qemu/argv.js';
import { applyChardevChanges } from '../qemu/chardev-pipe.js';
import { FdLayout } from '../qemu/fd-layout.js';
import { launch, qemuExitReason } from '../qemu/launcher.js';
import type { GuestResource } from '../security/driver.js';
import { guestResources, resolveResources } from '../security/resources.js';
import type { RunningRecord } from '../store/store.js';
import { crashPoint } from './crash-points.js';
import type { LifecycleEnv } from './env.js';
import { bindSocket, dropHandle, openResources, OpenFiles, pipeEntries, type ChardevIo } from './files.js';
import { sharedMemoryArgv } from './filesystems.js';
import { prepareHelperDevices } from './helper-devices.js';
import { finishIncoming, type Incoming, type IncomingMigration } from './incoming.js';
import { applyNicLinks, prepareNics } from './nics.js';
import { notifySocketPath } from './exit-notify.js';
import { ensureNvram, machineFds, prepareDefinition } from './machine.js';
import { ensureRuntimeRoot, monitorSocketPath } from './runtime-dir.js';
import { chardevLogEntries, finishDevices, placeDevices, usedSets } from './console-devices.js';
import { addPtyFds, allocatePtys, ptyPaths, ptyRelays } from './pty-relay.js';
import { UndoStack } from './undo.js';
import { guestEntrypoints } from './guest-entrypoints.js';

/**
 * Starts a guest (DESIGN §3). Each step that changes the world pushes its undo; a failure
 * unwinds them in reverse (docs/lifecycle.md lists the order). Every file is opened once,
 * labelled through that fd and handed to QEMU as that fd.
 */
export async function startGuest(
  env: LifecycleEnv,
  given: DomainDef,
  persistent: boolean,
  paused: boolean,
  incoming?: Incoming,
  migration?: IncomingMigration, // a migration's destination: started paused, -incoming defer
): Promise<RunningRecord> {
  // Emulator checked, implicit devices, PCI addresses and firmware: what the live XML shows.
  const def = prepareDefinition(env.paths.stateDir, given);
  if (!persistent && env.store.getDefinedByName(def.name)) {
    throw new SvirtError('SVIRT_ERR_DOMAIN_EXISTS', `domain '${def.name}' is already defined; use start`);
  }
  ensureRuntimeRoot(env);
  const runtimeDir = join(env.paths.runtimeRoot, def.uuid);
  const qmpPath = monitorSocketPath(env, def.uuid);
  const claimed = env.store.insertStarting({
    uuid: def.uuid,
    name: def.name,
    ownerPid: env.me.pid,
    ownerStart: env.me.startTime,
    runtimeDir,
    qmpPath,
    liveXml: formatDomainXml(def),
    persistent,
    stack: env.manager.names,
    resources: [],
    startedAt: Date.now(),
  });
  if (!claimed) {
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${def.name}' is already running (or being started or stopped)`);
  }
  crashPoint('start:claimed');
  const undo = new UndoStack();
  // Set when labels could not be restored: the record stays, ownerless, for reconcile to retry.
  let keepRecord = false;
  undo.push('release the claim and the reservations', () => {
    if (keepRecord) {
      env.store.setRunState(def.uuid, 'stopping', null);
      return;
    }
    env.store.tx(() => {
      env.store.releaseReservations(def.uuid);
      env.store.deleteRunning(def.uuid);
    });
  });
  const ctx = env.context(def, runtimeDir);
  const files = new OpenFiles();
  try {
    // The guest's cgroup, made first and empty: the kernel's wait for the join overlaps the steps below.
    const { startCgroup } = await import('./cgroup/start-cgroup.js');
    const cgroup = startCgroup(env.paths.stateDir, def, env.manager.names, undo);
    removeTree(runtimeDir);
    mkdirSync(runtimeDir, { mode: 0o700 });
    undo.push('remove the runtime dir', () => removeTree(runtimeDir));
    // QEMU's stderr: opened by svirt, inherited by QEMU, labelled like the guest's other
    // output files (under SELinux an inherited fd QEMU may not write is closed at exec).
    const logPath = join(env.logDir(), `${def.name}.log`);
    const logFd = files.fd(
      openSync(logPath, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600),
    );
    // Channel and display sockets placed in the runtime dir, display ports reserved (console-devices.ts).
    const placed = env.manager.genLabels(await placeDevices(env.store, def, runtimeDir), ctx);
    const { def: live, nics } = await prepareNics(env, placed, undo, files);
    const removeNvram = ensureNvram(live, env.paths.stateDir);
    if (removeNvram) undo.push('remove the nvram made for this start', removeNvram);
    const helperDevices = prepareHelperDevices(env, live, files);
    const wanted: GuestResource[] = [
      ...resolveResources(guestResources(live, runtimeDir)),
      { path: logPath, role: 'log', seclabels: [] },
      ...nics.resources,
      ...helperDevices.resources,
    ];
    if (incoming) wanted.push({ path: incoming.path, role: 'saved-state', seclabels: [], handle: incoming.handle });
    const socketLabels = env.manager.socketLabels(live);
    const opened = openResources(wanted, files, socketLabels?.listen, guestEntrypoints(env, runtimeDir, env.manager, def.uuid));
    let resources = opened.resources;
    undo.push('remove bound sockets', () => removeBoundSockets(opened.io));
    // Journal first: from here a crash is repaired from what the record says.
    env.store.updateRunning(def.uuid, { liveXml: formatDomainXml(live), resources });
    crashPoint('start:labels-reserved');
    // The limits and the device list of the guest's cgroup, before anything runs for it (docs/cgroups.md)
    cgroup.fill(resources);
    const cgroups = cgroup.dirs;
    await env.manager.setAllLabel(live, resources, ctx, migration?.labelLater);
    undo.push('restore labels', async () => {
      try {
        await env.manager.restoreAllLabel(live, resources.map(dropHandle), ctx);
      } catch (err) {
        keepRecord = true;
        throw err;
      }
    });
    crashPoint(incoming ? 'restore:labelled' : 'start:labelled');
    const layout = new FdLayout();
    const fdsets = openDisks(live, resources, files, layout, migration?.attachLater);
    const chardevFds = chardevEntries(live, opened.io, layout, fdsets.size);
    // ptys allocated and labelled by svirt, relayed by the monitor (pty-relay.ts)
    const ptys = allocatePtys(live, files, socketLabels?.listen);
    addPtyFds(ptys, layout, chardevFds);
    const pipeFds = pipeEntries(live, opened.io, layout, fdsets.size + chardevFds.size); // sets after theirs
    const logFds = chardevLogEntries(live, opened.io, layout, usedSets(fdsets.values(), chardevFds.values(), pipeFds.values()));
    // The rng sources and pflash firmware: fdsets after every other (src/lifecycle/machine.ts).
    const { rngFds, firmwareFds } = machineFds(
      live,
      resources,
      files,
      layout,
      usedSets(fdsets.values(), chardevFds.values(), pipeFds.values(), logFds.values()),
    );
    // A pipe with PATH.in and PATH.out is wired over QMP while QEMU waits (src/qemu/chardev-pipe.ts).
    const changes = chardevChanges(live, pipeFds);
    const netdevs = nics.backends(layout);
    const qmpFd = layout.add(files.fd(bindSocket(qmpPath, socketLabels?.listen)));
    undo.push('remove the monitor socket', () => removeFile(qmpPath));
    crashPoint(incoming ? 'restore:monitor-bound' : 'start:monitor-bound');
    const deviceArgv = await helperDevices.start(ctx, layout, undo);
    crashPoint('start:helpers-started');
    await nics.confineHelpers(env, live, ctx); // spawned beside QEMU, below
    const argv = buildArgv(live, {
      emulator: ctx.emulator,
      accel: ctx.virtType === 'kvm' ? 'kvm' : 'tcg',
      qmpFd,
      paused: paused || incoming !== undefined || changes.length > 0 || nics.linksDown(live).length > 0,
      fdsets,
      chardevFds,
      pipeFds,
      nics: netdevs,
      rngFds,
      ...(firmwareFds ? { firmwareFds } : {}),
      logFds,
    });
    argv.push(...deviceArgv, ...sharedMemoryArgv(live, argv));
    let stateFd: number | undefined;
    if (incoming) {
      // The saved state comes as one more inherited fd, positioned after the save header.
      stateFd = layout.add(incoming.fd);
      argv.push('-incoming', `fd:${stateFd}`);
    }
    if (migration) argv.push('-incoming', 'defer'); // the stream comes later, as an fd (migrate/transfer.ts)
    const spec = { ...env.manager.confinement(live, resources, ctx, layout.qemuFds), ...(cgroups.length > 0 ? { cgroups } : {}) };
    const launched = await launch({
      monitorPath: svirtMonitorPath(),
      argv,
      spec,
      layout,
      logFd,
      logPath,
      qmpPath,
      ...(socketLabels ? { socketLabel: socketLabels.connect } : {}),
      hook: monitorHook(env, live),
      notify: notifySocketPath(env.paths),
      timeoutMs: env.startTimeoutMs,
      relays: ptyRelays(ptys),
      ...(cgroup.cgroup2 !== undefined ? { cgroup2: cgroup.cgroup2 } : {}),
      // svirt's copies of what QEMU inherits go at once: a QEMU that dies must take its
      // monitor socket with it, or the wait for its greeting would last the whole timeout.
      spawned: () => {
        nics.spawnHelpers(env, live, undo); // passt's start overlaps QEMU's (nics.ts)
        files.closeFds();
        nics.close();
      },
    });
    undo.push('end QEMU', () => env.kill({ pid: launched.pid, startTime: launched.startTime }));
    let liveXml: string;
    try {
      await nics.helpersReady();
      await applyNicLinks(launched.qmp, live, !paused && incoming === undefined && changes.length === 0);
      // pty paths shown, display passwords set, while the guest waits for the changes below
      liveXml = await finishDevices(live, launched.qmp, ptyPaths(ptys));
      await applyChardevChanges(launched.qmp, changes, !paused && incoming === undefined);
      if (incoming && stateFd !== undefined) await finishIncoming(launched.qmp, paused, logPath, incoming, launched.pid, stateFd);
    } catch (err) {
      throw await qemuExitReason(err, { pid: launched.pid, startTime: launched.startTime }, logPath);
    } finally {
      launched.qmp.close();
    }
    if (incoming) crashPoint('restore:loaded');
    crashPoint('start:launched');
    const stateFile = resources.find((r) => r.role === 'saved-state');
    if (stateFile) {
      // The state is loaded: the file goes back to its owner and label before anyone sees the guest run.
      await env.manager.restoreResourceLabel(live, dropHandle(stateFile), ctx);
      resources = resources.filter((r) => r !== stateFile);
      env.store.updateRunning(def.uuid, { resources });
    }
    env.store.tx(() => {
      env.store.updateRunning(def.uuid, {
        liveXml,
        pid: launched.pid,
        pidStart: launched.startTime,
        monitorPid: launched.monitorPid,
        paused,
      });
      env.store.setRunState(def.uuid, 'running', null);
    });
    const rec = env.store.getRunning(def.uuid);
    if (!rec) throw new SvirtError('SVIRT_ERR_INTERNAL', `running record of '${def.name}' vanished`);
    undo.commit();
    return rec;
  } catch (err) {
    // A QEMU the monitor reported before svirt learned of it must not outlive the start.
    const rec = env.store.getRunning(def.uuid);
    if (rec?.pid && rec.pidStart) await env.kill({ pid: rec.pid, startTime: rec.pidStart });
    const undoErr = await undo.unwind();
    if (undoErr) env.warn(`${def.name}: ${undoErr.message} (the next command retries)`);
    throw err;
  } finally {
    files.closeAll();
  }
}

function removeBoundSockets(io: ReadonlyMap<GuestResource, ChardevIo>): void {
  for (const [r, x] of io) if (x.kind === 'listen') unlinkBeneath(r.path, 'remove a socket in', (st) => st.isSocket());
}

/**
 * Reopens every disk layer from the handle that was checked and labelled (never the path
 * again) and gives each its own fdset in QEMU.
 */
function openDisks(
  def: DomainDef,
  resources: readonly GuestResource[],
  files: OpenFiles,
  layout: FdLayout,
  attachLater?: (r: GuestResource) => boolean,
): Map<string, FdSetEntry> {
  const fdsets = new Map<string, FdSetEntry>();
  let set = 1;
  for (const disk of def.disks) {
    const own = resources.filter((r) => r.disk === disk);
    for (const layer of diskLayers(disk)) {
      const r = own[layer.index];
      if (!r?.handle) throw new SvirtError('SVIRT_ERR_INTERNAL', `disk ${disk.target.dev} layer ${layer.index} was not opened`);
      // A migration's shared image waits for Finish: no fd now, a placeholder of its size (migrate/attach-later.ts).
      const wait = attachLater?.(r) === true ? { wait: r.handle.current().size } : undefined;
      const fd = wait ? -1 : layout.add(files.fd(r.handle.reopen(layer.readonly ? constants.O_RDONLY : constants.O_RDWR)));
      const block = r.handle.kind === 'block' ? { block: true } : {};
      fdsets.set(layer.key, { fd, set: set++, path: r.path, readonly: layer.readonly, ...wait, ...block });
    }
  }
  return fdsets;
}

/** QEMU's fd (and fdset, for files) of each chardev svirt opened or bound, by chardev index. */
function chardevEntries(
  def: DomainDef,
  io: ReadonlyMap<GuestResource, ChardevIo>,
  layout: FdLayout,
  setsUsed: number,
): Map<number, FdSetEntry> {
  const out = new Map<number, FdSetEntry>();
  let set = setsUsed + 1;
  for (const [r, x] of io) {
    if (x.kind !== 'file' && x.kind !== 'listen') continue; // a pipe's FIFOs: pipeEntries
    // The first chardev of that path: a console aliasing a serial is not given to QEMU (argv.ts).
    const index = def.chardevs.findIndex((c) => c.path !== undefined && (c.path === r.declared || c.path === r.path));
    if (index >= 0) out.set(index, { fd: layout.add(x.fd), set: x.kind === 'file' ? set++ : 0, path: r.path, readonly: false });
  }
  return out;
}
