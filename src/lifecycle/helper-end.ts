/**
 * The end of a guest's helper processes (helpers.ts starts them): by the identities in its
 * running record and by the token each carries in its environment.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { endProcess, processStartTime, type ProcessIdentity } from '../host/proc.js';
import type { LifecycleEnv } from './env.js';

/**
 * Ends every helper of a guest recorded in its running record (or only the one with id
 * `only`, a hot-unplugged device's): by pid + start time (never a bare pid), SIGTERM then
 * SIGKILL; a helper journalled but never given a pid (svirt died while spawning it), and any
 * process a helper started, by the token in its environment. Then forgets them. Idempotent:
 * stop, cleanup, reconcile, a failed start's undo and a NIC's repair all call it.
 */
export async function endHelpers(env: LifecycleEnv, uuid: string, only?: string): Promise<void> {
  const rec = env.store.getRunning(uuid);
  const ending = rec?.helpers.filter((h) => only === undefined || h.id === only) ?? [];
  if (ending.length === 0) return;
  const ids: ProcessIdentity[] = ending.flatMap((h) =>
    h.pid !== null && h.startTime !== null ? [{ pid: h.pid, startTime: h.startTime }] : [],
  );
  ids.push(...processesWithTokens(new Set(ending.map((h) => h.token))).filter((p) => !ids.some((i) => i.pid === p.pid)));
  // SIGTERM, 2 s, SIGKILL, each through a pidfd once the identity is checked (proc.ts endProcess).
  await Promise.all(ids.map((id) => endProcess(id, 2000, 'helper process')));
  env.store.tx(() => {
    const now = env.store.getRunning(uuid);
    if (now) env.store.updateRunning(uuid, { helpers: now.helpers.filter((h) => !ending.some((e) => e.token === h.token)) });
  });
}

/** Processes whose environment carries one of these SVIRT_HELPER tokens (root reads every /proc/PID/environ). */
function processesWithTokens(tokens: ReadonlySet<string>): ProcessIdentity[] {
  const out: ProcessIdentity[] = [];
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return out; // no /proc: nothing can be found (and nothing could have been confined either)
  }
  for (const p of pids) {
    let environ: string;
    try {
      environ = readFileSync(`/proc/${p}/environ`, 'latin1');
    } catch {
      continue; // gone meanwhile, or not ours to read
    }
    const m = /(?:^|\0)SVIRT_HELPER=([^\0]*)/.exec(environ);
    if (m?.[1] === undefined || !tokens.has(m[1])) continue;
    const startTime = processStartTime(Number(p));
    if (startTime !== undefined) out.push({ pid: Number(p), startTime });
  }
  return out;
}
