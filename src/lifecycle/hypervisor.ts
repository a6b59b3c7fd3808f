import type { DiskDef, DomainDef } from '../domain/domain-def.js';
import { formatDomainXml, parseDomainXml, type InterfaceDef } from '../domain/index.js';
import { SvirtError } from '../errors.js';
import type { StatePaths } from '../host/paths.js';
import type { ProcessIdentity } from '../host/proc.js';
import { describeGuest, type GuestSecurity } from '../security/describe-guest.js';
import type { SecurityManager } from '../security/manager.js';
import type { RunningRecord, Store } from '../store/store.js';
import type { DeviceChangeOptions } from './device-targets.js';
import { LifecycleEnv, type LifecycleOptions } from './env.js';
import type { ConsoleSession } from './console-session.js';
import { withMacs } from './nic-macs.js';
import { undefineTpm } from './tpm-state.js';
import { undefineSnapshots } from './snapshots/snapshot-undefine.js';
import { findGuest, inactiveDef, listBrief, listGuests, noDomain, requireRunning } from './guest.js';
import type { Guest, GuestBrief } from './guest.js';
import { prepareDefinition, undefineNvram, type NvramUndefine } from './machine.js';
import { reconcile } from './reconcile.js';
import type { Progress } from './incoming.js';
import { getAutostart } from '../store/domain-extras.js';
import { hasManagedSave, startManaged, undefineManagedSave } from './ops/managed-save.js';

export type HypervisorOptions = LifecycleOptions;

/**
 * The front of every lifecycle step (DESIGN §3): CLI verbs and the remote protocol call these
 * methods and nothing below them. Each finds its guest once and hands it, with the few ports
 * it needs, to a step family (start, stop, reconcile, devices, save, clone; docs/lifecycle.md).
 * A family is imported by the method that uses it, so a verb loads only its own (docs/startup.md).
 * Networks, storage pools and the everyday domain operations are made by the verbs and
 * procedures that use them (`new Networks(hv.env)`, `new StoragePools(hv.env)`, `domainOps(hv)`),
 * so no start, stop or read loads their modules.
 */
export class Hypervisor {
  readonly env: LifecycleEnv;

  constructor(o: HypervisorOptions) {
    this.env = new LifecycleEnv(o);
  }

  get store(): Store {
    return this.env.store;
  }

  get paths(): StatePaths {
    return this.env.paths;
  }

  get manager(): SecurityManager {
    return this.env.manager;
  }

  get me(): ProcessIdentity {
    return this.env.me;
  }

  virtType(def: DomainDef): 'kvm' | 'qemu' {
    return this.env.virtType(def);
  }

  /** Whether a guest has a managed save (dominfo, virsh list's filters, the remote query). */
  hasManagedSave(guest: Pick<Guest, 'uuid'>): boolean {
    return hasManagedSave(this.env, guest.uuid);
  }

  /** Whether a guest starts with the host (a transient one never does). */
  autostart(guest: Pick<Guest, 'uuid' | 'persistent'>): boolean {
    return guest.persistent && getAutostart(this.store, guest.uuid);
  }

  // ---- definitions -------------------------------------------------------------------

  define(xml: string): DomainDef {
    // Inactive parse (virsh define): generated dynamic labels in the input are dropped.
    const def = prepareDefinition(this.paths.stateDir, withMacs(this.store, parseDomainXml(xml, { inactive: true })));
    this.store.putDefinition({ uuid: def.uuid, name: def.name, xml: formatDomainXml(def) });
    return def;
  }

  /**
   * Removes a definition. A guest with an nvram file needs `nvram` ('remove' or 'keep'), as
   * virsh asks; `keepTpm` is virsh's --keep-tpm (by default the TPM state goes with the definition).
   * A guest with snapshot metadata needs `snapshotsMetadata` (virsh's --snapshots-metadata).
   */
  undefine(
    name: string,
    opts: { nvram?: NvramUndefine; keepTpm?: boolean; managedSave?: boolean; snapshotsMetadata?: boolean } = {},
  ): DomainDef {
    const d = this.store.getDefinedByName(name) ?? this.store.getDefinedByUuid(name.toLowerCase());
    if (!d) throw noDomain(name);
    const def = parseDomainXml(d.xml);
    // The TPM's and managed save's checks come first: a refused undefine must not have removed the nvram already.
    const tpm = undefineTpm(this.env, def, opts.keepTpm ?? false);
    const managed = undefineManagedSave(this.env, def.uuid, def.name, opts.managedSave ?? false);
    const snapshots = undefineSnapshots(this.store.db, def.uuid, def.name, opts.snapshotsMetadata ?? false);
    undefineNvram(def, opts.nvram);
    // A running guest stays running, as a transient one (libvirt's behaviour).
    const running = this.store.undefine(d.uuid);
    managed();
    snapshots();
    if (!running) tpm();
    // A running guest still needs its driver files (profiles); its stop removes them.
    if (!running) this.manager.undefine(def);
    return def;
  }

  /** A guest by name or uuid: its live definition when running, else the stored one. */
  lookup(nameOrUuid: string): Guest {
    return findGuest(this.store, nameOrUuid);
  }

  /** The stored (inactive) definition. */
  inactiveDef(nameOrUuid: string): DomainDef {
    return inactiveDef(this.lookup(nameOrUuid));
  }

  list(): Guest[] {
    return listGuests(this.store);
  }

  /** list() without any XML: what `svirt list` shows, for 200 running guests too (issue 17). */
  listBrief(): GuestBrief[] {
    return listBrief(this.store);
  }

  /**
   * What dominfo, its `--json` and the remote procedures show of a guest's security, from
   * the stack the guest runs under (which may differ from this command's).
   */
  async describe(guest: Guest): Promise<GuestSecurity> {
    const manager = guest.record ? await this.env.managerFor(guest.record) : this.manager;
    return describeGuest(manager, guest.def, guest.record?.pid ?? undefined, guest.record?.resources ?? []);
  }

  // ---- start and stop ----------------------------------------------------------------

  /**
   * A guest with a managed save is restored from it (ops/managed-save.ts); `forceBoot` discards
   * that. `onDefinition` is shown the definition a boot parsed (not called for a restore): the
   * CLI's warnings read it there instead of parsing it again once QEMU is up.
   */
  async start(
    name: string,
    opts: { paused?: boolean; forceBoot?: boolean; onDefinition?: (def: DomainDef) => void } = {},
  ): Promise<RunningRecord> {
    const d = this.store.getDefinedByName(name) ?? this.store.getDefinedByUuid(name.toLowerCase());
    if (!d) throw noDomain(name);
    const restored = await startManaged(this.env, d.uuid, opts, (file, o) => this.restore(file, o));
    if (restored) return restored;
    const { startGuest } = await import('./start.js');
    const def = parseDomainXml(d.xml);
    opts.onDefinition?.(def);
    return startGuest(this.env, def, true, opts.paused ?? false);
  }

  /** `create FILE`: a transient guest, gone from the store once it stops (`onDefinition` as for start). */
  async create(xml: string, opts: { paused?: boolean; onDefinition?: (def: DomainDef) => void } = {}): Promise<RunningRecord> {
    const { startGuest } = await import('./start.js');
    const def = withMacs(this.store, parseDomainXml(xml, { inactive: true }));
    opts.onDefinition?.(def);
    return startGuest(this.env, def, false, opts.paused ?? false);
  }

  logDir(): string {
    return this.env.logDir();
  }

  /** `destroy`: SIGTERM, then SIGKILL after a grace period; labels restored; nothing left. */
  async destroy(name: string, opts: { graceMs?: number } = {}): Promise<void> {
    const { destroyGuest } = await import('./stop.js');
    return destroyGuest(this.env, name, opts.graceMs ?? 3000);
  }

  /**
   * `shutdown`: asks the guest to power off (ACPI, or SIGTERM with mode 'signal') and waits;
   * cleanup follows once QEMU is gone. False when it did not stop within the timeout.
   */
  async shutdown(name: string, opts: { mode?: 'acpi' | 'signal'; timeoutMs?: number } = {}): Promise<boolean> {
    const rec = requireRunning(this.lookup(name));
    const { requestShutdown } = await import('./stop.js');
    if (!(await requestShutdown(this.env, rec, opts))) return false;
    await this.reconcile();
    return true;
  }

  /** SIGTERM, wait, SIGKILL: ends QEMU, only if the pid is still the process we started. */
  async kill(id: ProcessIdentity, graceMs = 0): Promise<void> {
    return this.env.kill(id, graceMs);
  }

  /** Every command starts here (see reconcile.ts). */
  async reconcile(): Promise<string[]> {
    return reconcile(this.env);
  }

  // ---- running guests ----------------------------------------------------------------

  async suspend(name: string): Promise<void> {
    const rec = requireRunning(this.lookup(name));
    await this.env.withQmp(rec, (q) => q.execute('stop'));
    this.store.updateRunning(rec.uuid, { paused: true });
  }

  /** A hard reset of the guest's machine (QMP system_reset): its devices and labels stay as they are. */
  async reset(name: string): Promise<void> {
    const rec = requireRunning(this.lookup(name));
    await this.env.withQmp(rec, (q) => q.execute('system_reset'));
  }

  async resume(name: string): Promise<void> {
    const rec = requireRunning(this.lookup(name));
    await this.env.withQmp(rec, (q) => q.execute('cont'));
    this.store.updateRunning(rec.uuid, { paused: false });
  }

  /** `console`: the pty of a serial port, console or channel, for one session (console-session.ts). */
  /** `server`: a session svirt serve holds for a client, ended in-process when another takes it over. */
  async openConsole(
    name: string,
    devname: string | undefined,
    force: boolean,
    server?: { readonly onTakenOver: () => void },
  ): Promise<ConsoleSession> {
    const { openConsole } = await import('./console-session.js');
    return openConsole(this.env, this.lookup(name), devname, force, server);
  }

  /** `qemu-agent-command`: one command to the guest agent, its reply (guest-agent.ts). */
  async agentCommand(name: string, command: string, timeoutMs: number): Promise<string> {
    const { agentCommand } = await import('./guest-agent.js');
    return agentCommand(this.env, this.lookup(name), command, timeoutMs);
  }

  /** `screenshot`: a PNG of the display, written to a new `file` (screenshot.ts). */
  async screenshot(name: string, file: string, screen: number): Promise<{ width: number; height: number; bytes: number }> {
    const { screenshot } = await import('./screenshot.js');
    return screenshot(this.env, this.lookup(name), file, screen);
  }

  /** Hot-plugs a disk (`live`) and/or adds it to the persistent definition (`config`). */
  async attachDisk(name: string, disk: DiskDef, opts: DeviceChangeOptions = {}): Promise<void> {
    const { attachDisk } = await import('./devices.js');
    return attachDisk(this.env, this.lookup(name), disk, opts);
  }

  /** Unplugs the disk with this target dev; its file gets its original owner and labels back. */
  async detachDisk(name: string, target: string, opts: DeviceChangeOptions = {}): Promise<void> {
    const { detachDisk } = await import('./devices.js');
    return detachDisk(this.env, this.lookup(name), target, opts);
  }

  /** Inserts (source given) or ejects (undefined) the medium of a CD-ROM/floppy drive. */
  async changeMedia(name: string, target: string, source: string | undefined, opts: DeviceChangeOptions = {}): Promise<void> {
    const { changeMedia } = await import('./devices.js');
    return changeMedia(this.env, this.lookup(name), target, source, opts);
  }

  /** Hot-plugs a NIC (`live`) and/or adds it to the persistent definition (`config`); returns it with its MAC. */
  async attachInterface(name: string, nic: InterfaceDef, opts: DeviceChangeOptions = {}): Promise<InterfaceDef> {
    const { attachInterface } = await import('./nic-plug.js');
    return attachInterface(this.env, this.lookup(name), nic, opts);
  }

  /** Unplugs the NIC of `type` (by MAC when the guest has several); its tap is removed. */
  async detachInterface(name: string, type: string, mac: string | undefined, opts: DeviceChangeOptions = {}): Promise<void> {
    const { detachInterface } = await import('./nic-plug.js');
    return detachInterface(this.env, this.lookup(name), type, mac, opts);
  }

  /** Saves the guest's state into `file` (replacing it once complete) and stops it. */
  async save(name: string, file: string, progress?: Progress): Promise<void> {
    const { saveGuest } = await import('./save.js');
    return saveGuest(this.env, this.lookup(name), file, progress);
  }

  /** Starts a guest from a state file written by save, with fresh labels; the file keeps none. */
  async restore(file: string, opts: { paused?: boolean; progress?: Progress } = {}): Promise<RunningRecord> {
    const [{ restoreGuest }, { startGuest }] = await Promise.all([import('./save.js'), import('./start.js')]);
    return restoreGuest(this.env, file, opts, (def, persistent, paused, incoming) =>
      startGuest(this.env, def, persistent, paused, incoming),
    );
  }

  /** A shut-off guest copied under a new name and uuid, with copies of its writable images. */
  async clone(name: string, newName: string, progress?: (file: string, done: number, total: number) => void): Promise<DomainDef> {
    if (newName === '') throw new SvirtError('SVIRT_ERR_USAGE', 'clone: the new name is empty');
    const { cloneGuest } = await import('./clone.js');
    return cloneGuest(this.env, this.lookup(name), newName, progress);
  }
}

export type { DeviceChangeOptions, Guest, Progress };
export type { DomainInfo, DomainState } from './guest.js';
export { noDomain };
