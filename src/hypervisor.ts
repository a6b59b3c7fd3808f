import { closeSync, constants, existsSync, fstatSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { DiskDef, DomainDef } from './domain/domain-def.js';
import { formatDomainXml, parseDomainXml } from './domain/index.js';
import { SvirtError, errnoOf } from './errors.js';
import type { StatePaths } from './host/paths.js';
import { isAlive, selfIdentity, signal, waitGone, type ProcessIdentity } from './host/proc.js';
import { startGuest } from './hypervisor-start.js';
import type { Progress } from './hypervisor-state.js';
import { QmpClient } from './qemu/qmp-client.js';
import type { SecurityContext } from './security/driver.js';
import type { SecurityManager } from './security/manager.js';
import { deserializeResources, resolvePath } from './security/resources.js';
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
  /** The QMP greeting must come within this. */
  readonly startTimeoutMs: number;
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
    return startGuest(this, parseDomainXml(d.xml), true, opts.paused ?? false);
  }

  /** `create FILE`: a transient guest, gone from the store once it stops. */
  async create(xml: string, opts: { paused?: boolean } = {}): Promise<RunningRecord> {
    return startGuest(this, parseDomainXml(xml, { inactive: true }), false, opts.paused ?? false);
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
  async kill(id: ProcessIdentity, graceMs = 0): Promise<void> {
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
      return await startGuest(this, def, persistent, opts.paused ?? header.paused, {
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

export function noDomain(name: string): SvirtError {
  return new SvirtError('SVIRT_ERR_NO_DOMAIN', `Domain not found: no domain with matching name or uuid '${name}'`);
}
