/** Where a device change applies: the running guest, its persistent definition, or both. */
import type { DomainDef } from '../domain/domain-def.js';
import { formatDomainXml, parseDomainXml } from '../domain/index.js';
import { SvirtError } from '../errors.js';
import type { RunningRecord } from '../store/store.js';
import type { LifecycleEnv } from './env.js';
import type { Guest } from './guest.js';

/** virsh's --live / --config / --persistent: where a device change applies. */
export interface DeviceChangeOptions {
  /** Change the running guest (default: when it runs). */
  readonly live?: boolean;
  /** Change the persistent definition (default: when the guest is not running). */
  readonly config?: boolean;
}

/** Where a change goes: virsh's defaults are live for a running guest, config for a stopped one. */
export function targets(
  env: LifecycleEnv,
  info: Guest,
  opts: DeviceChangeOptions,
): { rec?: RunningRecord; live: boolean; config: boolean } {
  const running = info.record?.state === 'running' ? info.record : undefined;
  const live = opts.live ?? (running !== undefined && opts.config !== true);
  const config = opts.config ?? running === undefined;
  if (live && !running) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${info.def.name}' is not running`);
  if (config && !env.store.getDefinedByUuid(info.def.uuid)) {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `domain '${info.def.name}' is transient: it has no persistent definition to change`,
    );
  }
  return running ? { rec: running, live, config } : { live, config };
}

export function updateDefinition(env: LifecycleEnv, uuid: string, change: (def: DomainDef) => DomainDef): void {
  const stored = env.store.getDefinedByUuid(uuid);
  if (!stored) return;
  const next = change(parseDomainXml(stored.xml));
  env.store.putDefinition({ uuid, name: next.name, xml: formatDomainXml(next) });
}
