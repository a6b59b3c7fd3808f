/**
 * The devices whose work a helper process does (tpm.ts, filesystems.ts), as start sees them:
 * prepared before the guest's files are labelled (their files join the list), started after
 * (their helpers run before QEMU, which gets fds and argv).
 */
import type { DomainDef } from '../domain/domain-def.js';
import type { FdLayout } from '../qemu/fd-layout.js';
import type { GuestResource, SecurityContext } from '../security/driver.js';
import type { LifecycleEnv } from './env.js';
import type { OpenFiles } from './files.js';
import type { HelperSpec } from '../security/helper.js';
import { filesystemsDryRun, prepareFilesystems } from './filesystems.js';
import type { PreparedDevice } from './helpers.js';
import { prepareTpm, tpmDryRun } from './tpm.js';
import type { UndoStack } from './undo.js';

export interface HelperDevices {
  /** Files to label with the guest's own: helper logs, TPM state, shared dirs. */
  readonly resources: readonly GuestResource[];
  /** Starts every helper (undone by `undo`); returns what QEMU's argv needs (its fds in `layout`). */
  start(ctx: SecurityContext, layout: FdLayout, undo: UndoStack): Promise<string[]>;
}

export function prepareHelperDevices(env: LifecycleEnv, live: DomainDef, files: OpenFiles): HelperDevices {
  const devices = [prepareTpm(env, live, files), prepareFilesystems(env, live, files)].filter(
    (d): d is PreparedDevice => d !== undefined,
  );
  return {
    resources: devices.flatMap((d) => d.resources),
    start: async (ctx, layout, undo) => {
      const argv: string[] = [];
      for (const d of devices) argv.push(...(await d.start(ctx, layout, undo)));
      return argv;
    },
  };
}

/** `svirt profile`: the files and helpers of these devices, as a start would have them; touches nothing. */
export function helperDevicesDryRun(stateDir: string, def: DomainDef): { resources: GuestResource[]; helpers: HelperSpec[] } {
  const parts = [tpmDryRun(stateDir, def), filesystemsDryRun(def)];
  return { resources: parts.flatMap((p) => p.resources), helpers: parts.flatMap((p) => p.helpers) };
}
