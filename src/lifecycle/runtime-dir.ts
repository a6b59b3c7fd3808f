/** The runtime root every guest's dir lives in, and the root-only dir of monitor sockets. */
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SvirtError } from '../errors.js';
import type { StatePaths } from '../host/paths.js';
import type { LifecycleEnv } from './env.js';

/** The monitor socket: in a root-only directory, so no guest can replace it or point it elsewhere. */
export function monitorSocketPath(env: LifecycleEnv, uuid: string): string {
  return join(env.paths.runtimeRoot, 'monitor', `${uuid}.sock`);
}

/**
 * The runtime root (guest uids traverse it to reach their own dir: 0711) and the monitor
 * socket dir inside it (root's only: 0700). A directory svirt did not create keeps its mode.
 */
export function ensureRuntimeRoot(env: LifecycleEnv): void {
  makeRuntimeDirs(env.paths);
  if (env.manager.names.includes('dac')) checkTraversable(env.paths.runtimeRoot);
}

/** The runtime root (0711) and its root-only monitor dir (0700), each made when missing; returns the latter. */
export function makeRuntimeDirs(paths: StatePaths): string {
  const root = paths.runtimeRoot;
  // mkdir honours the umask: what svirt creates gets its exact mode, nothing else is chmodded.
  if (mkdirSync(root, { recursive: true, mode: 0o711 }) !== undefined) chmodSync(root, 0o711);
  const monitors = join(root, 'monitor');
  if (mkdirSync(monitors, { recursive: true, mode: 0o700 }) !== undefined) chmodSync(monitors, 0o700);
  return monitors;
}

/** Under dac, QEMU runs as a guest uid that must be able to search every dir down to its runtime dir. */
function checkTraversable(dir: string): void {
  for (let d = dir; d !== dirname(d); d = dirname(d)) {
    const st = statSync(d);
    if ((st.mode & 0o001) === 0) {
      throw new SvirtError(
        'SVIRT_ERR_HOST',
        `guest uids cannot reach the runtime dir "${dir}": "${d}" is mode ${(st.mode & 0o777).toString(8).padStart(4, '0')} (needs o+x)`,
        { details: { path: d } },
      );
    }
  }
}
