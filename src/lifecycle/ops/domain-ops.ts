/**
 * The front of the everyday domain operations of issue 14 (managedsave, autostart, setmem,
 * setvcpus, domrename, metadata, domtime, send-key, qemu-monitor-command): CLI verbs and
 * remote procedures call these, each finds its guest once and hands it to a step of this
 * folder. `domainOps(hv)` makes one; whether a guest autostarts or has a managed save, which
 * dominfo and list show, the Hypervisor answers itself (only these operations load this folder).
 */
import type { RunningRecord } from '../../store/store.js';
import type { Hypervisor } from '../hypervisor.js';
import type { LifecycleEnv } from '../env.js';
import { findGuest, type Guest } from '../guest.js';
import type { Progress } from '../incoming.js';
import { autostartAll, setDomainAutostart, type AutostartResult } from './autostart.js';
import { managedSave, removeManagedSave } from './managed-save.js';
import { getMetadata, setMetadata } from './metadata.js';
import { TAINT_MESSAGES, monitorCommand } from './monitor-command.js';
import { taintsOf } from '../../store/domain-extras.js';
import { renameGuest } from './rename.js';
import { getGuestTime, sendKey, setGuestTime } from './time-keys.js';
import { setMaxMemory, setMemory, setVcpus, vcpuCount, type Impact } from './tune.js';

export type { Impact, AutostartResult };

/** The everyday operations on `hv`'s guests. */
export function domainOps(hv: Pick<Hypervisor, 'env' | 'start'>): DomainOps {
  return new DomainOps(hv.env, (n) => hv.start(n));
}

export class DomainOps {
  constructor(
    private readonly env: LifecycleEnv,
    private readonly startGuest: (nameOrUuid: string) => Promise<RunningRecord>,
  ) {}

  private guest(nameOrUuid: string): Guest {
    return findGuest(this.env.store, nameOrUuid);
  }

  managedSave(name: string, progress?: Progress): Promise<void> {
    return managedSave(this.env, this.guest(name), progress);
  }

  removeManagedSave(name: string): boolean {
    return removeManagedSave(this.env, this.guest(name));
  }

  setAutostart(name: string, on: boolean): void {
    setDomainAutostart(this.env, this.guest(name), on);
  }

  autostartAll(): Promise<AutostartResult[]> {
    return autostartAll(this.env, this.startGuest);
  }

  setMemory(name: string, kib: number, impact: Impact = {}): Promise<void> {
    return setMemory(this.env, this.guest(name), kib, impact);
  }

  setMaxMemory(name: string, kib: number, impact: Impact = {}): void {
    setMaxMemory(this.env, this.guest(name), kib, impact);
  }

  setVcpus(name: string, n: number, impact: Impact & { maximum?: boolean } = {}): Promise<void> {
    return setVcpus(this.env, this.guest(name), n, impact);
  }

  vcpuCount(name: string, impact: Impact & { maximum?: boolean } = {}): number {
    return vcpuCount(this.guest(name), impact);
  }

  rename(name: string, newName: string): void {
    renameGuest(this.env, this.guest(name), newName);
  }

  getMetadata(name: string, type: number, uri: string | undefined, impact: Impact = {}): string {
    return getMetadata(this.guest(name), type, uri, impact);
  }

  setMetadata(
    name: string,
    type: number,
    value: string | undefined,
    key: string | undefined,
    uri: string | undefined,
    impact: Impact = {},
  ): void {
    setMetadata(this.env, this.guest(name), type, value, key, uri, impact);
  }

  getTime(name: string): Promise<{ seconds: bigint; nseconds: number }> {
    return getGuestTime(this.env, this.guest(name));
  }

  setTime(name: string, t: { seconds: bigint; nseconds: number } | 'sync'): Promise<void> {
    return setGuestTime(this.env, this.guest(name), t);
  }

  sendKey(name: string, codeset: number, keys: readonly number[], holdMs = 0): Promise<void> {
    return sendKey(this.env, this.guest(name), codeset, keys, holdMs);
  }

  /** DomainGetMessages, dominfo's Messages: the taints of the run under way. */
  messages(name: string): string[] {
    const g = this.guest(name);
    return taintsOf(this.env.store, g.uuid, g.record).map((t) => TAINT_MESSAGES[t] ?? `tainted: ${t}`);
  }

  monitorCommand(name: string, command: string, hmp: boolean): Promise<string> {
    return monitorCommand(this.env, this.guest(name), command, hmp);
  }
}
