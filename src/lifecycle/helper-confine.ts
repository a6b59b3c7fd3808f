/**
 * A helper's launcher spec, made before it is journalled and spawned (helpers.ts): every
 * driver's part for it and the guest's cgroup. A part may take a while to make (an AppArmor
 * driver writes and loads the helper's profile, running apparmor_parser off the event loop),
 * so it is made first, and a helper that starts beside QEMU spawns inside the launch
 * without waiting on anything.
 */
import type { DomainDef } from '../domain/domain-def.js';
import { SvirtError } from '../errors.js';
import { FdLayout } from '../qemu/fd-layout.js';
import type { ConfinementSpec } from '../security/confinement.js';
import type { SecurityContext } from '../security/driver.js';
import { assertHelperId, type HelperSpec } from '../security/helper.js';
import { cgroupJoinDirs } from './cgroup/journal.js';
import type { LifecycleEnv } from './env.js';

/** What of a helper request (helpers.ts's HelperRequest) its confinement reads. */
export interface ConfinableRequest {
  readonly spec: HelperSpec;
  /** argv[0] is `spec.binary`. */
  readonly argv: readonly string[];
  readonly log: { readonly path: string };
  readonly layout?: FdLayout;
}

/** A helper request with the launcher spec its confinement gives it (confineHelper), and the fds that spec keeps. */
export interface ConfinedHelper<R extends ConfinableRequest = ConfinableRequest> {
  readonly req: R & { readonly layout: FdLayout };
  readonly spec: ConfinementSpec;
}

/**
 * The launcher spec of one helper: every driver's part (an AppArmor driver writes and loads
 * the helper's profile here, running apparmor_parser off the event loop), and the guest's
 * cgroup. Made before the helper is journalled, so spawnHelpers can spawn beside QEMU
 * without awaiting anything.
 */
export async function confineHelper<R extends ConfinableRequest>(
  env: LifecycleEnv,
  live: DomainDef,
  ctx: SecurityContext,
  req: R,
): Promise<ConfinedHelper<R>> {
  const { id } = req.spec;
  assertHelperId(id);
  if (req.argv[0] !== req.spec.binary) {
    throw new SvirtError(
      'SVIRT_ERR_INTERNAL',
      `helper ${id}: argv[0] ${req.argv[0] ?? ''} is not its program ${req.spec.binary}`,
    );
  }
  const layout = req.layout ?? new FdLayout();
  const cgroups = cgroupJoinDirs(env.paths.stateDir, live.uuid); // the guest's cgroup holds its helpers too
  const part = await env.manager.helperConfinement(live, { ...req.spec, log: req.log.path }, ctx, layout.qemuFds);
  return { req: { ...req, layout }, spec: { ...part, ...(cgroups.length > 0 ? { cgroups } : {}) } };
}
