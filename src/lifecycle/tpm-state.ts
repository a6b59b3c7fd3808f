import { removeTree } from '../host/files.js';
import { join } from 'node:path';
import type { DomainDef } from '../domain/domain-def.js';
import { SvirtError } from '../errors.js';
import type { LifecycleEnv } from './env.js';

// A TPM's state on undefine, apart from tpm.ts (swtpm's start), so that `undefine` loads only this.

/** `<state dir>/swtpm/<uuid>`: removed with the TPM state (undefine, a transient guest's stop). */
export function tpmGuestDir(env: LifecycleEnv, uuid: string): string {
  return join(env.paths.stateDir, 'swtpm', uuid);
}

/** Deletes a guest's TPM state (undefine without --keep-tpm; a transient guest's stop). */
export function removeTpmState(env: LifecycleEnv, uuid: string): void {
  removeTree(tpmGuestDir(env, uuid));
}

/**
 * `undefine`: the TPM state goes with the definition (virsh's default, and `--tpm`) unless
 * `--keep-tpm`. A running guest keeps its state until it stops; as it is transient from then
 * on, its state goes then, so `--keep-tpm` is refused for it rather than not honoured.
 * Checks now; returns the removal, for once the definition is gone and the guest is not running.
 */
export function undefineTpm(env: LifecycleEnv, def: DomainDef, keep: boolean): () => void {
  const running = env.store.getRunning(def.uuid) !== undefined;
  if (keep && running && def.tpms?.[0]?.persistentState !== true) {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `domain '${def.name}' is running: its TPM state would go when it stops; stop it first to undefine with --keep-tpm`,
    );
  }
  return () => {
    if (!keep) removeTpmState(env, def.uuid);
  };
}

/**
 * A guest without a definition (created, or undefined while it ran) takes its TPM state with
 * it when it stops, unless `persistent_state='yes'` (libvirt's rule).
 */
export function removeTransientTpmState(env: LifecycleEnv, live: DomainDef, persistent: boolean): void {
  const tpm = live.tpms?.[0];
  if (persistent || tpm === undefined || tpm.persistentState) return;
  if (env.store.getDefinedByUuid(live.uuid)) return; // defined again meanwhile: its state stays
  removeTpmState(env, live.uuid);
}
