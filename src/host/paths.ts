import { join } from 'node:path';

/** Where svirt keeps its state and its per-guest runtime dirs. */
export interface StatePaths {
  /** Holds svirt.db (definitions, running records, reservations, remembered owners). */
  readonly stateDir: string;
  /** Parent of every guest's private runtime dir (QMP socket, log). */
  readonly runtimeRoot: string;
  /** True for the system instance (root), false for a user's session instance. */
  readonly system: boolean;
}

/**
 * DESIGN §5: an explicit dir wins (its runtime root is DIR/run); else /var/lib/svirt +
 * /run/svirt for root, $XDG_DATA_HOME/svirt + $XDG_RUNTIME_DIR/svirt otherwise.
 */
export function resolveStatePaths(explicit: string | undefined, env: NodeJS.ProcessEnv, uid: number): StatePaths {
  const dir = explicit ?? env['SVIRT_STATE_DIR'];
  const system = uid === 0;
  if (dir !== undefined && dir !== '') {
    return { stateDir: dir, runtimeRoot: join(dir, 'run'), system };
  }
  if (system) return { stateDir: '/var/lib/svirt', runtimeRoot: '/run/svirt', system };
  const home = env['HOME'] ?? `/tmp/svirt-home-${uid}`;
  const data = env['XDG_DATA_HOME'] ?? join(home, '.local', 'share');
  const runtime = env['XDG_RUNTIME_DIR'] ?? join('/tmp', `svirt-run-${uid}`);
  return { stateDir: join(data, 'svirt'), runtimeRoot: join(runtime, 'svirt'), system };
}
