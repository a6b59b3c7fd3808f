/**
 * Autostart (virsh autostart, DomainSetAutostart/GetAutostart). svirt has no daemon that
 * starts guests when the host boots; the shipped unit `policy/systemd/svirt-autostart.service`
 * runs `svirt autostart-all` once at boot: every network marked autostart that is not active,
 * then every guest marked autostart that does not run (from its managed save when it has one,
 * as `start` does).
 */
import { SvirtError } from '../../errors.js';
import { autostartUuids, setAutostart } from '../../store/domain-extras.js';
import type { LifecycleEnv } from '../env.js';
import type { Guest } from '../guest.js';

export function setDomainAutostart(env: LifecycleEnv, guest: Guest, on: boolean): void {
  if (!guest.persistent)
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `cannot set autostart for transient domain '${guest.name}'`);
  setAutostart(env.store, guest.uuid, on);
}

export interface AutostartResult {
  readonly kind: 'network' | 'domain';
  readonly name: string;
  /** `started`, `running` (it was already), or the error. */
  readonly result: 'started' | 'running' | { readonly error: string };
}

/** Starts what is marked autostart and not running; one failure does not stop the others. */
export async function autostartAll(env: LifecycleEnv, start: (uuid: string) => Promise<unknown>): Promise<AutostartResult[]> {
  const out: AutostartResult[] = [];
  const { Networks } = await import('../networks.js');
  const nets = new Networks(env);
  for (const n of nets.list().filter((x) => x.autostart)) {
    if (n.active) {
      out.push({ kind: 'network', name: n.def.name, result: 'running' });
      continue;
    }
    try {
      await nets.start(n.def.name);
      out.push({ kind: 'network', name: n.def.name, result: 'started' });
    } catch (err) {
      out.push({ kind: 'network', name: n.def.name, result: { error: err instanceof Error ? err.message : String(err) } });
    }
  }
  for (const uuid of autostartUuids(env.store)) {
    const d = env.store.getDefinedByUuid(uuid);
    if (!d) continue; // undefined since: nothing to start
    if (env.store.getRunning(uuid)) {
      out.push({ kind: 'domain', name: d.name, result: 'running' });
      continue;
    }
    try {
      await start(uuid);
      out.push({ kind: 'domain', name: d.name, result: 'started' });
    } catch (err) {
      out.push({ kind: 'domain', name: d.name, result: { error: err instanceof Error ? err.message : String(err) } });
    }
  }
  return out;
}
