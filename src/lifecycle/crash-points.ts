import { traceStep } from '../host/trace-steps.js';

/**
 * Fault injection for the crash-safety tests: when SVIRT_TEST_CRASH_AT names a step, svirt
 * kills itself there with SIGKILL (no cleanup, no finally blocks), as a power cut or an
 * OOM kill would. Read only by tests; every step name is listed in CRASH_POINTS.
 */
export const CRASH_POINTS = [
  'start:claimed',
  'start:cgroup-journaled',
  'start:cgroup-made',
  'start:labels-reserved',
  'start:labelled',
  'start:monitor-bound',
  'start:helper-journaled',
  'start:helpers-started',
  'start:launched',
  'destroy:claimed',
  'destroy:killed',
  'shutdown:requested',
  'cleanup:restored',
  'attach:journaled',
  'attach:labelled',
  'attach:fds-passed',
  'attach:plugged',
  'detach:journaled',
  'detach:unplugged',
  'media:eject-journaled',
  'media:insert-journaled',
  'media:inserted',
  'save:journaled',
  'save:labelled',
  'save:migrated',
  'save:restored',
  'restore:labelled',
  'restore:monitor-bound',
  'restore:loaded',
] as const;

/** Steps of a live external snapshot (test/e2e/snapshots-live.test.ts runs each). */
export const SNAPSHOT_CRASH_POINTS = [
  'snapshot:journaled',
  'snapshot:labelled',
  'snapshot:nodes-added',
  'snapshot:switched',
  'snapshot:reopened',
] as const;

/** Steps of a network's start (test/e2e/network-race.test.ts); not guest steps, so not in CRASH_POINTS. */
export const NETWORK_CRASH_POINTS = ['net-start:claimed', 'net-start:bridge'] as const;

/** Steps of a migration, on either host (test/migrate/faults.test.ts runs them with two hosts). */
export const MIGRATION_CRASH_POINTS = [
  'migrate-out:journaled',
  'migrate-out:streaming',
  'migrate-out:mirrored',
  'migrate-out:migrated',
  'migrate-out:confirmed',
  'migrate-out:killed',
  'migrate-in:prepared',
  'migrate-in:exported',
  'migrate-in:loaded',
  'migrate-in:unexported',
  'migrate-in:journaled',
  'migrate-in:took-image',
  'migrate-in:attached',
  'migrate-in:resumed',
] as const;

export type CrashPoint =
  | (typeof CRASH_POINTS)[number]
  | (typeof NETWORK_CRASH_POINTS)[number]
  | (typeof MIGRATION_CRASH_POINTS)[number]
  | (typeof SNAPSHOT_CRASH_POINTS)[number];

/** Kills svirt at `name` when a test asks; traces the step with SVIRT_TRACE_STEPS=1 (host/trace-steps.ts). */
export function crashPoint(name: CrashPoint): void {
  traceStep(name);
  if (process.env['SVIRT_TEST_CRASH_AT'] === name) process.kill(process.pid, 'SIGKILL');
}
