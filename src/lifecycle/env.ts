import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_ENTRYPOINT_RULES, type EntrypointRules } from '../access/entrypoint-rules.js';
import type { DomainDef } from '../domain/domain-def.js';
import { parseDomainXml } from '../domain/index.js';
import type { StatePaths } from '../host/paths.js';
import { endProcess, selfIdentity, type ProcessIdentity } from '../host/proc.js';
import { emulatorPath, guestArch, kvmRuns } from '../qemu/emulator.js';
import type { QmpClient } from '../qemu/qmp-client.js';
import type { SecurityContext } from '../security/driver.js';
import type { SecurityManager } from '../security/manager.js';
import { stackFromNames, type SecurityConfig } from '../security/stack.js';
import type { RunningRecord, Store } from '../store/store.js';

export interface LifecycleOptions {
  readonly paths: StatePaths;
  readonly store: Store;
  /** The stack new guests start with. */
  readonly manager: SecurityManager;
  readonly config: SecurityConfig;
  /** The QMP greeting must come within this (default 30 s: TCG on a loaded host is slow). */
  readonly startTimeoutMs?: number;
  /** Where warnings go (default stderr): a label left alone, a guest found without a record. */
  readonly warn?: (message: string) => void;
  /** Which files may become a guest's resources (default: DEFAULT_ENTRYPOINT_RULES). */
  readonly entrypointRules?: EntrypointRules;
}

/**
 * The few ports every step family needs: the store, the paths, the security stack, QEMU's
 * monitor and process ends. Step functions take this and a Guest, never the Hypervisor.
 */
export class LifecycleEnv {
  readonly store: Store;
  readonly paths: StatePaths;
  readonly manager: SecurityManager;
  readonly config: SecurityConfig;
  readonly startTimeoutMs: number;
  /** This process (owner of the operations it journals). */
  readonly me: ProcessIdentity;
  readonly warn: (message: string) => void;
  readonly entrypointRules: EntrypointRules;

  constructor(o: LifecycleOptions) {
    this.store = o.store;
    this.paths = o.paths;
    this.manager = o.manager;
    this.config = o.config;
    this.startTimeoutMs = o.startTimeoutMs ?? 30_000;
    this.me = selfIdentity();
    this.warn = o.warn ?? ((m) => process.stderr.write(`warning: ${m}\n`));
    this.entrypointRules = o.entrypointRules ?? DEFAULT_ENTRYPOINT_RULES;
  }

  /**
   * libvirt's meaning: `<domain type='kvm'>` asks for KVM (used when /dev/kvm exists, TCG
   * otherwise), `type='qemu'` is plain emulation (TCG).
   */
  virtType(def: DomainDef): 'kvm' | 'qemu' {
    return def.type === 'kvm' && existsSync('/dev/kvm') && kvmRuns(guestArch(def)) ? 'kvm' : 'qemu';
  }

  context(def: DomainDef, runtimeDir: string): SecurityContext {
    return {
      runtimeDir,
      runtimeRoot: this.paths.runtimeRoot,
      memory: this.store,
      reservations: this.store,
      virtType: this.virtType(def),
      emulator: emulatorPath(def),
      warn: this.warn,
    };
  }

  /** The stack a running guest was started with (it may differ from today's). */
  async managerFor(rec: RunningRecord): Promise<SecurityManager> {
    return rec.stack.join(',') === this.manager.names.join(',') ? this.manager : stackFromNames(rec.stack, this.config);
  }

  logDir(): string {
    const dir = join(this.paths.stateDir, 'log');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  /**
   * Connects to a running guest's monitor. svirt bound its socket in a root-only directory
   * and gave QEMU the listening fd (start.ts), so no guest can point this path elsewhere.
   */
  async withQmp<T>(rec: RunningRecord, fn: (q: QmpClient) => Promise<T>): Promise<T> {
    // The client's code loads with the first connection: most verbs never talk to QEMU.
    const { QmpClient } = await import('../qemu/qmp-client.js');
    const q = await QmpClient.connect(rec.qmpPath, 5000, await this.connectLabel(rec));
    try {
      return await fn(q);
    } finally {
      q.close();
    }
  }

  /** The label svirt's end of a monitor connection needs (SELinux), from the guest's own label. */
  async connectLabel(rec: RunningRecord): Promise<string | undefined> {
    const manager = await this.managerFor(rec);
    const live = parseDomainXml(rec.liveXml);
    return manager.hasLiveLabels(live) ? manager.socketLabels(live)?.connect : undefined;
  }

  /**
   * SIGTERM, wait, SIGKILL: ends QEMU, only if the pid is still the process we started, through
   * a pidfd (proc.ts endProcess): no signal can reach a process that reused the pid, and the
   * exit is seen as it happens.
   */
  async kill(id: ProcessIdentity, graceMs = 0): Promise<void> {
    await endProcess(id, graceMs, 'QEMU process');
  }
}
