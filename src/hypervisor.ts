import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  chmodSync,
  statSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DiskDef, DomainDef } from './domain/domain-def.js';
import { formatDomainXml, parseDomainXml } from './domain/index.js';
import { SvirtError, errnoOf } from './errors.js';
import { svirtExecPath, svirtMonitorPath } from './host/native.js';
import type { StatePaths } from './host/paths.js';
import { isAlive, selfIdentity, signal, waitGone, type ProcessIdentity } from './host/proc.js';
import { buildArgv, diskKey, type FdSetEntry } from './qemu/argv.js';
import { launch, logTail } from './qemu/launcher.js';
import { QmpClient } from './qemu/qmp-client.js';
import type { GuestResource, SecurityContext } from './security/driver.js';
import type { Progress } from './hypervisor-state.js';
import type { SecurityManager } from './security/manager.js';
import { deserializeResources, guestResources, resolvePath, resolveResources, serializeResources } from './security/resources.js';
import { stackFromNames, type SecurityConfig } from './security/stack.js';
import type { RunningRecord, Store } from './store/store.js';
import { crashPoint } from './testing/crash-points.js';

export type DomainState = 'running' | 'paused' | 'shut off';

/** virsh's --live / --config / --persistent: where a device change applies. */
export interface DeviceChangeOptions {
  /** Change the running guest (default: when it runs). */
  readonly live?: boolean;
  /** Change the persistent definition (default: when the guest is not running). */
  readonly config?: boolean;
}

export interface DomainInfo {
  readonly def: DomainDef;
  readonly state: DomainState;
  readonly persistent: boolean;
  readonly record?: RunningRecord;
}

export interface HypervisorOptions {
  readonly paths: StatePaths;
  readonly store: Store;
  /** The stack new guests start with. */
  readonly manager: SecurityManager;
  readonly config: SecurityConfig;
  /** The QMP greeting must come within this (default 30 s: TCG on a loaded host is slow). */
  readonly startTimeoutMs?: number;
}

/**
 * The one place where the order of every lifecycle step lives (DESIGN §3). CLI verbs and
 * the remote protocol call these methods and nothing below them.
 */
export class Hypervisor {
  readonly store: Store;
  readonly paths: StatePaths;
  readonly manager: SecurityManager;
  private readonly config: SecurityConfig;
  private readonly startTimeoutMs: number;
  /** This process (owner of the operations it journals). */
  readonly me: ProcessIdentity;

  constructor(o: HypervisorOptions) {
    this.store = o.store;
    this.paths = o.paths;
    this.manager = o.manager;
    this.config = o.config;
    this.startTimeoutMs = o.startTimeoutMs ?? 30_000;
    this.me = selfIdentity();
  }

  /**
   * libvirt's meaning: `<domain type='kvm'>` asks for KVM (used when /dev/kvm exists, TCG
   * otherwise), `type='qemu'` is plain emulation (TCG).
   */
  virtType(def: DomainDef): 'kvm' | 'qemu' {
    return def.type === 'kvm' && existsSync('/dev/kvm') ? 'kvm' : 'qemu';
  }

  context(def: DomainDef, runtimeDir: string): SecurityContext {
    return {
      runtimeDir,
      runtimeRoot: this.paths.runtimeRoot,
      memory: this.store,
      reservations: this.store,
      virtType: this.virtType(def),
      emulator: def.emulator ?? '/usr/bin/qemu-system-x86_64',
    };
  }

  // ---- definitions -------------------------------------------------------------------

  define(xml: string): DomainDef {
    // Inactive parse (virsh define): generated dynamic labels in the input are dropped.
    const def = parseDomainXml(xml, { inactive: true });
    this.store.putDefinition({ uuid: def.uuid, name: def.name, xml: formatDomainXml(def) });
    return def;
  }

  undefine(name: string): DomainDef {
    const d = this.store.getDefinedByName(name);
    if (!d) throw noDomain(name);
    const def = parseDomainXml(d.xml);
    const running = this.store.tx(() => {
      this.store.deleteDefinition(d.uuid);
      const rec = this.store.getRunning(d.uuid);
      // A running guest stays running, as a transient one (libvirt's behaviour).
      if (rec) this.store.db.prepare('UPDATE running SET persistent = 0 WHERE uuid = ?').run(d.uuid);
      return rec !== undefined;
    });
    // A running guest still needs its driver files (profiles); its stop removes them.
    if (!running) this.manager.undefine(def);
    return def;
  }

  /** A guest by name or uuid: its live definition when running, else the stored one. */
  lookup(nameOrUuid: string): DomainInfo {
    const rec = this.store.getRunningByName(nameOrUuid) ?? this.store.getRunning(nameOrUuid.toLowerCase());
    if (rec) {
      return {
        def: parseDomainXml(rec.liveXml),
        state: rec.paused ? 'paused' : 'running',
        persistent: rec.persistent,
        record: rec,
      };
    }
    const d = this.store.getDefinedByName(nameOrUuid) ?? this.store.getDefinedByUuid(nameOrUuid.toLowerCase());
    if (!d) throw noDomain(nameOrUuid);
    return { def: parseDomainXml(d.xml), state: 'shut off', persistent: true };
  }

  /** The stored (inactive) definition. */
  inactiveDef(nameOrUuid: string): DomainDef {
    const info = this.lookup(nameOrUuid);
    const d = this.store.getDefinedByUuid(info.def.uuid);
    if (!d)
      throw new SvirtError(
        'SVIRT_ERR_OPERATION_INVALID',
        `domain '${info.def.name}' is transient: it has no inactive definition`,
      );
    return parseDomainXml(d.xml);
  }

  list(): DomainInfo[] {
    const out: DomainInfo[] = [];
    const running = new Set<string>();
    for (const rec of this.store.listRunning()) {
      running.add(rec.uuid);
      out.push({
        def: parseDomainXml(rec.liveXml),
        state: rec.paused ? 'paused' : 'running',
        persistent: rec.persistent,
        record: rec,
      });
    }
    for (const d of this.store.listDefined()) {
      if (!running.has(d.uuid)) out.push({ def: parseDomainXml(d.xml), state: 'shut off', persistent: true });
    }
    return out;
  }

  // ---- start -------------------------------------------------------------------------

  async start(name: string, opts: { paused?: boolean } = {}): Promise<RunningRecord> {
    const d = this.store.getDefinedByName(name) ?? this.store.getDefinedByUuid(name.toLowerCase());
    if (!d) throw noDomain(name);
    return this.startDef(parseDomainXml(d.xml), true, opts.paused ?? false);
  }

  /** `create FILE`: a transient guest, gone from the store once it stops. */
  async create(xml: string, opts: { paused?: boolean } = {}): Promise<RunningRecord> {
    return this.startDef(parseDomainXml(xml, { inactive: true }), false, opts.paused ?? false);
  }

  private async startDef(def: DomainDef, persistent: boolean, paused: boolean, incoming?: Incoming): Promise<RunningRecord> {
    if (!persistent && this.store.getDefinedByName(def.name)) {
      throw new SvirtError('SVIRT_ERR_DOMAIN_EXISTS', `domain '${def.name}' is already defined; use start`);
    }
    this.ensureRuntimeRoot();
    const runtimeDir = join(this.paths.runtimeRoot, def.uuid);
    const qmpPath = join(runtimeDir, 'qmp.sock');
    const claimed = this.store.insertStarting({
      uuid: def.uuid,
      name: def.name,
      ownerPid: this.me.pid,
      ownerStart: this.me.startTime,
      runtimeDir,
      qmpPath,
      liveXml: formatDomainXml(def),
      persistent,
      stack: this.manager.names,
      resources: '[]',
      startedAt: Date.now(),
    });
    if (!claimed) {
      throw new SvirtError(
        'SVIRT_ERR_OPERATION_INVALID',
        `domain '${def.name}' is already running (or being started or stopped)`,
      );
    }
    crashPoint('start:claimed');
    const ctx = this.context(def, runtimeDir);
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
      const logPath = join(this.logDir(), `${def.name}.log`);
      const logFd = openSync(logPath, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
      fds.push(logFd);
      live = this.manager.genLabels(def, ctx);
      resources = [...resolveResources(guestResources(live, runtimeDir)), { path: logPath, role: 'log', seclabels: [] }];
      const stateFile: GuestResource | undefined = incoming
        ? { path: incoming.path, role: 'saved-state', seclabels: [] }
        : undefined;
      if (stateFile) resources.push(stateFile);
      // Journal first: from here a crash is repaired from what the record says.
      this.store.updateRunning(def.uuid, { liveXml: formatDomainXml(live), resources: serializeResources(resources) });
      crashPoint('start:labels-reserved');
      this.manager.setAllLabel(live, resources, ctx);
      crashPoint(incoming ? 'restore:labelled' : 'start:labelled');
      const fdsets = this.openDisks(live, images);
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
      const spec = this.manager.confinement(live, resources, ctx, keep);
      const launched = await launch({
        monitorPath: svirtMonitorPath(),
        execPath: svirtExecPath(),
        argv,
        spec,
        fds: incoming ? [...images, incoming.fd] : images,
        logFd,
        logPath,
        qmpPath,
        hook: this.reconcileHook(),
        timeoutMs: this.startTimeoutMs,
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
        this.manager.restoreResourceLabel(live, stateFile, ctx);
        resources = resources.filter((r) => r !== stateFile);
        this.store.updateRunning(def.uuid, { resources: serializeResources(resources) });
      }
      this.store.tx(() => {
        this.store.updateRunning(def.uuid, {
          pid: launched.pid,
          pidStart: launched.startTime,
          monitorPid: launched.monitorPid,
          paused,
        });
        this.store.setRunState(def.uuid, 'running', null);
      });
      const rec = this.store.getRunning(def.uuid);
      if (!rec) throw new SvirtError('SVIRT_ERR_INTERNAL', `running record of '${def.name}' vanished`);
      return rec;
    } catch (err) {
      if (launchedPid) await this.kill(launchedPid);
      await this.killStarting(def.uuid);
      this.undoStart(live, resources, ctx);
      throw err;
    } finally {
      for (const fd of [...fds, ...images]) closeSync(fd);
    }
  }

  /** A start that failed after the monitor learned QEMU's pid: make sure nothing of it runs. */
  private async killStarting(uuid: string): Promise<void> {
    const rec = this.store.getRunning(uuid);
    if (rec?.pid && rec.pidStart) await this.kill({ pid: rec.pid, startTime: rec.pidStart });
  }

  private undoStart(live: DomainDef, resources: readonly GuestResource[], ctx: SecurityContext): void {
    try {
      // No resources: labels were never generated (or none applied), so nothing to restore.
      if (resources.length > 0) this.manager.restoreAllLabel(live, resources, ctx);
    } catch (restoreErr) {
      // Keep the record: the next command's reconcile retries the restore.
      this.store.setRunState(live.uuid, 'stopping', null);
      throw restoreErr;
    }
    this.store.tx(() => {
      this.store.releaseReservations(live.uuid);
      this.store.deleteRunning(live.uuid);
    });
    rmSync(ctx.runtimeDir, { recursive: true, force: true });
  }

  /**
   * Opens every disk layer (O_NOFOLLOW on the resolved path). The k-th fd pushed to `images`
   * becomes fd 4 + k in QEMU (fd 3 carries the spec), which is what the entries name.
   */
  private openDisks(def: DomainDef, images: number[]): Map<string, FdSetEntry> {
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

  private reconcileHook(): string[] {
    // dist/src/hypervisor.js → <package>/bin/svirt.js
    const main = fileURLToPath(new URL('../../bin/svirt.js', import.meta.url));
    // The record names the stack to clean up with; the hook itself needs no probing.
    return [process.execPath, main, '--state-dir', this.paths.stateDir, '--security-driver', 'none', 'reconcile', '--quiet'];
  }

  private ensureRuntimeRoot(): void {
    mkdirSync(this.paths.runtimeRoot, { recursive: true, mode: 0o711 });
    // Guest uids must traverse it to reach their own dir (and nothing more: 0711).
    if (this.paths.system) {
      chmodSync(this.paths.runtimeRoot, 0o711);
      if (this.paths.runtimeRoot.startsWith(this.paths.stateDir + '/')) chmodSync(this.paths.stateDir, 0o711);
    }
    if (this.manager.names.includes('dac')) checkTraversable(this.paths.runtimeRoot);
  }

  logDir(): string {
    const dir = join(this.paths.stateDir, 'log');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  // ---- stop --------------------------------------------------------------------------

  /** `destroy`: SIGTERM, then SIGKILL after a grace period; labels restored; nothing left. */
  async destroy(name: string, opts: { graceMs?: number } = {}): Promise<void> {
    const rec = this.claimForStop(name);
    crashPoint('destroy:claimed');
    try {
      if (rec.pid && rec.pidStart) await this.kill({ pid: rec.pid, startTime: rec.pidStart }, opts.graceMs ?? 3000);
      crashPoint('destroy:killed');
      await this.cleanup(rec);
    } catch (err) {
      // Whatever is left (a label that would not restore) is the next reconcile's to retry.
      this.store.abandon(rec.uuid);
      throw err;
    }
  }

  /**
   * `shutdown`: asks the guest to power off (ACPI, or SIGTERM with mode 'signal' which QEMU
   * handles as a clean exit) and waits for it; cleanup follows once QEMU is gone.
   */
  async shutdown(name: string, opts: { mode?: 'acpi' | 'signal'; timeoutMs?: number } = {}): Promise<boolean> {
    const info = this.lookup(name);
    const rec = info.record;
    if (!rec || rec.state !== 'running' || !rec.pid || !rec.pidStart) {
      throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${info.def.name}' is not running`);
    }
    const id = { pid: rec.pid, startTime: rec.pidStart };
    if ((opts.mode ?? 'acpi') === 'signal') signal(id.pid, 'SIGTERM');
    else await this.withQmp(rec, (q) => q.execute('system_powerdown'));
    crashPoint('shutdown:requested');
    if (opts.timeoutMs === 0) return false;
    if (!(await waitGone(id, opts.timeoutMs ?? 60_000))) return false;
    await this.reconcile();
    return true;
  }

  /** Claims a running guest for stopping (state → stopping, owned by this process). */
  private claimForStop(name: string): RunningRecord {
    return this.store.tx(() => {
      const rec = this.store.getRunningByName(name) ?? this.store.getRunning(name.toLowerCase());
      if (!rec) {
        if (this.store.getDefinedByName(name) ?? this.store.getDefinedByUuid(name.toLowerCase())) {
          throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${name}' is not running`);
        }
        throw noDomain(name);
      }
      const busy =
        rec.state !== 'running' && rec.ownerPid && rec.ownerStart && isAlive({ pid: rec.ownerPid, startTime: rec.ownerStart });
      if (busy)
        throw new SvirtError(
          'SVIRT_ERR_OPERATION_INVALID',
          `domain '${rec.name}' is being ${rec.state === 'starting' ? 'started' : 'stopped'} by process ${rec.ownerPid}`,
        );
      this.store.setRunState(rec.uuid, 'stopping', this.me);
      return { ...rec, state: 'stopping' };
    });
  }

  /** SIGTERM, wait, SIGKILL: ends QEMU, only if the pid is still the process we started. */
  private async kill(id: ProcessIdentity, graceMs = 0): Promise<void> {
    if (!isAlive(id)) return;
    signal(id.pid, graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
    if (graceMs > 0 && (await waitGone(id, graceMs, 2))) return;
    if (isAlive(id)) signal(id.pid, 'SIGKILL');
    if (!(await waitGone(id, 10_000, 2))) {
      throw new SvirtError('SVIRT_ERR_TIMEOUT', `QEMU process ${id.pid} did not exit after SIGKILL`);
    }
  }

  /** The end of every stop: restore labels, release reservations, remove the runtime dir and the record. */
  private async cleanup(rec: RunningRecord): Promise<void> {
    const live = parseDomainXml(rec.liveXml);
    const manager =
      rec.stack.join(',') === this.manager.names.join(',') ? this.manager : await stackFromNames(rec.stack, this.config);
    const ctx = this.context(live, rec.runtimeDir);
    const resources = deserializeResources(rec.resources);
    // Labels are journalled before any file is touched: no labels or no resources, nothing was labelled.
    if (resources.length > 0 && manager.hasLiveLabels(live)) manager.restoreAllLabel(live, resources, ctx);
    crashPoint('cleanup:restored');
    this.store.tx(() => {
      this.store.releaseReservations(rec.uuid);
      this.store.deleteRunning(rec.uuid);
    });
    rmSync(rec.runtimeDir, { recursive: true, force: true });
  }

  /**
   * Every command starts here: a record whose QEMU is gone, or whose owner (a svirt process
   * that was starting or stopping it) died, is brought to a clean stop.
   */
  async reconcile(): Promise<string[]> {
    const cleaned: string[] = [];
    const reserved = this.store.uuidsWithReservations();
    for (const rec of this.store.listRunning()) {
      const qemu = rec.pid && rec.pidStart ? { pid: rec.pid, startTime: rec.pidStart } : undefined;
      const ownerAlive = rec.ownerPid && rec.ownerStart ? isAlive({ pid: rec.ownerPid, startTime: rec.ownerStart }) : false;
      if (rec.state === 'running' && qemu && isAlive(qemu)) {
        if (!reserved.has(rec.uuid) && rec.stack.some((d) => RESERVING.has(d))) await this.reserveAgain(rec);
        if (rec.pending && !ownerAlive && this.store.takeOverOp(rec.uuid, rec.ownerPid, this.me)) {
          try {
            await this.repairPending(rec);
            cleaned.push(`${rec.name} (${rec.pending.op} repaired)`);
          } catch (err) {
            this.store.abandon(rec.uuid);
            process.stderr.write(
              `warning: cannot repair the ${rec.pending.op} of guest '${rec.name}' yet: ${(err as Error).message}\n`,
            );
          }
        }
        continue;
      }
      if (rec.state !== 'running' && ownerAlive) continue;
      const claimed = this.store.tx(() => {
        const now = this.store.getRunning(rec.uuid);
        if (!now || now.ownerPid !== rec.ownerPid || now.state !== rec.state) return false; // someone else took it
        return this.store.setRunState(rec.uuid, 'stopping', this.me);
      });
      if (!claimed) continue;
      try {
        if (qemu) await this.kill(qemu);
        else await this.killUnrecorded(rec);
        await this.cleanup(rec);
        cleaned.push(rec.name);
      } catch (err) {
        this.store.abandon(rec.uuid);
        process.stderr.write(`warning: cannot clean up guest '${rec.name}' yet: ${(err as Error).message}\n`);
      }
    }
    return cleaned;
  }

  /**
   * A running guest whose reservations are gone (a store restored from backup, a table
   * emptied by hand) takes its labels again, so no new guest can be given them. A label
   * someone else took meanwhile is a collision: reported, the guest keeps running.
   */
  private async reserveAgain(rec: RunningRecord): Promise<void> {
    const live = parseDomainXml(rec.liveXml);
    const manager =
      rec.stack.join(',') === this.manager.names.join(',') ? this.manager : await stackFromNames(rec.stack, this.config);
    if (!manager.hasLiveLabels(live)) return;
    try {
      manager.reserveLabels(live, this.context(live, rec.runtimeDir));
    } catch (err) {
      process.stderr.write(`warning: guest '${rec.name}' runs with a label another guest holds: ${(err as Error).message}\n`);
    }
  }

  /** An operation whose svirt process died midway: finished or undone (see repairOp). */
  private async repairPending(rec: RunningRecord): Promise<void> {
    if (rec.pending?.op === 'save') {
      const { repairSave } = await import('./hypervisor-state.js');
      await repairSave(this, rec);
      return;
    }
    const { repairOp } = await import('./hypervisor-devices.js');
    await repairOp(this, rec);
  }

  /** A start that crashed before recording QEMU's pid: find it by its QMP socket's owner via the monitor. */
  private async killUnrecorded(rec: RunningRecord): Promise<void> {
    if (!existsSync(rec.qmpPath)) return;
    try {
      const q = await QmpClient.connect(rec.qmpPath, 1000);
      await q.execute('quit').catch(() => undefined); // QEMU closes the socket as it quits
      q.close();
    } catch {
      // Nobody listens: no QEMU of this start is alive.
    }
  }

  // ---- running guests ----------------------------------------------------------------

  async withQmp<T>(rec: RunningRecord, fn: (q: QmpClient) => Promise<T>): Promise<T> {
    const q = await QmpClient.connect(rec.qmpPath);
    try {
      return await fn(q);
    } finally {
      q.close();
    }
  }

  private runningRecord(name: string): RunningRecord {
    const info = this.lookup(name);
    if (!info.record || info.record.state !== 'running') {
      throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${info.def.name}' is not running`);
    }
    return info.record;
  }

  async suspend(name: string): Promise<void> {
    const rec = this.runningRecord(name);
    await this.withQmp(rec, (q) => q.execute('stop'));
    this.store.updateRunning(rec.uuid, { paused: true });
  }

  // ---- devices, state files, copies (see lifecycle.ts) --------------------------------

  /** Hot-plugs a disk (`live`) and/or adds it to the persistent definition (`config`). */
  async attachDisk(name: string, disk: DiskDef, opts: DeviceChangeOptions = {}): Promise<void> {
    const { attachDisk } = await import('./hypervisor-devices.js');
    return attachDisk(this, name, disk, opts);
  }

  /** Unplugs the disk with this target dev; its file gets its original owner and labels back. */
  async detachDisk(name: string, target: string, opts: DeviceChangeOptions = {}): Promise<void> {
    const { detachDisk } = await import('./hypervisor-devices.js');
    return detachDisk(this, name, target, opts);
  }

  /** Inserts (source given) or ejects (undefined) the medium of a CD-ROM/floppy drive. */
  async changeMedia(name: string, target: string, source: string | undefined, opts: DeviceChangeOptions = {}): Promise<void> {
    const { changeMedia } = await import('./hypervisor-devices.js');
    return changeMedia(this, name, target, source, opts);
  }

  /** Saves the guest's state into `file` (created, labelled, then given back) and stops it. */
  async save(name: string, file: string, progress?: Progress): Promise<void> {
    const { saveGuest } = await import('./hypervisor-state.js');
    return saveGuest(this, name, file, progress);
  }

  /** Starts a guest from a state file written by save, with fresh labels; the file keeps none. */
  async restore(file: string, opts: { paused?: boolean; progress?: Progress } = {}): Promise<RunningRecord> {
    const { readSaveHeader } = await import('./hypervisor-state.js');
    const path = resolvePath(file);
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `cannot open save file "${file}": ${errnoOf(err) ?? String(err)}`, {
        cause: err,
      });
    }
    try {
      const header = readSaveHeader(fd, file);
      const def = parseDomainXml(header.xml, { inactive: true });
      const persistent = this.store.getDefinedByUuid(def.uuid) !== undefined;
      const size = fstatSync(fd).size;
      return await this.startDef(def, persistent, opts.paused ?? header.paused, {
        fd,
        path,
        ...(opts.progress ? { progress: opts.progress, size } : {}),
      });
    } finally {
      closeSync(fd);
    }
  }

  /** A shut-off guest copied under a new name and uuid, with copies of its writable images. */
  async clone(name: string, newName: string, progress?: (file: string, done: number, total: number) => void): Promise<DomainDef> {
    const { cloneGuest } = await import('./hypervisor-state.js');
    return cloneGuest(this, name, newName, progress);
  }

  async resume(name: string): Promise<void> {
    const rec = this.runningRecord(name);
    await this.withQmp(rec, (q) => q.execute('cont'));
    this.store.updateRunning(rec.uuid, { paused: false });
  }
}

/** Drivers whose labels are exclusive (reserved in the store). */
const RESERVING: ReadonlySet<string> = new Set(['dac', 'selinux', 'apparmor']);

interface Incoming {
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

export function noDomain(name: string): SvirtError {
  return new SvirtError('SVIRT_ERR_NO_DOMAIN', `Domain not found: no domain with matching name or uuid '${name}'`);
}
