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

/** One driver's part as `svirt profile` lists it (drivers without a dry run of their own). */
export function describePart(part: ConfinementPart): string {
  const lines: string[] = [];
  if (part.uid !== undefined)
    lines.push(`process: +${part.uid}:+${part.gid ?? part.uid} (no supplementary groups, no capabilities)`);
  if (part.selinuxExecLabel !== undefined) lines.push(`process: ${part.selinuxExecLabel}`);
  if (part.apparmorProfile !== undefined) lines.push(`profile: ${part.apparmorProfile}`);
  for (const r of part.rlimits ?? []) lines.push(`rlimit ${r.resource}: ${r.soft}/${r.hard}`);
  if (part.landlock) {
    const l = part.landlock;
    lines.push(
      `handled fs: ${l.handledFs.join(' ')}`,
      `tcp ports allowed: ${l.netRules.map((r) => `${r.port} (${r.access.join(' ')})`).join(', ') || 'none'}`,
      ...l.pathRules.map((r) => `allow ${r.path}: ${r.access.join(' ')}${r.optional === true ? ' (if present)' : ''}`),
    );
  }
  if (part.mountView) lines.push(`private view: ${part.mountView.hide} hidden except ${part.mountView.keep}`);
  return lines.length > 0 ? lines.join('\n') : '(nothing applied)';
}
