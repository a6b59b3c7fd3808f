import { SvirtError } from '../errors.js';
import type { ConfinementPart, ConfinementSpec, RlimitSpec } from './confinement.js';
import type { DriverName } from './driver.js';

/** Every QEMU gets these whatever the stack: no core dumps (guest memory must not land on disk). */
const BASE_RLIMITS: readonly RlimitSpec[] = [{ resource: 'core', soft: 0, hard: 0 }];

export function mergeConfinement(
  parts: readonly { name: DriverName; part: ConfinementPart }[],
  keepFds: readonly number[],
): ConfinementSpec {
  const out: Record<string, unknown> = {};
  const owner = new Map<string, DriverName>();
  const rlimits = new Map<string, RlimitSpec>(BASE_RLIMITS.map((r) => [r.resource, r]));
  for (const { name, part } of parts) {
    for (const r of part.rlimits ?? []) rlimits.set(r.resource, r);
    for (const key of ['mountView', 'uid', 'gid', 'selinuxExecLabel', 'apparmorProfile', 'landlock'] as const) {
      const value = part[key];
      if (value === undefined) continue;
      const prev = owner.get(key);
      if (prev !== undefined) {
        throw new SvirtError('SVIRT_ERR_SECURITY_DRIVER', `drivers '${prev}' and '${name}' both set the process ${key}`);
      }
      owner.set(key, name);
      out[key] = value;
    }
  }
  if ((out['uid'] === undefined) !== (out['gid'] === undefined)) {
    throw new SvirtError('SVIRT_ERR_SECURITY_DRIVER', 'a driver set a uid without a gid (or the reverse)');
  }
  return {
    version: 1,
    rlimits: [...rlimits.values()],
    ...(out as Partial<ConfinementSpec>),
    ...(out['uid'] !== undefined ? { groups: [] } : {}),
    noNewPrivs: true,
    keepFds,
  };
}
