/**
 * The end of a guest's helper processes (helpers.ts starts them): by the identities in its
 * running record and by the token each carries in its environment.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { SvirtError } from '../errors.js';
import { isAlive, processStartTime, signal, waitGone, type ProcessIdentity } from '../host/proc.js';
import type { LifecycleEnv } from './env.js';

/**
 * Ends every helper of a guest recorded in its running record: by pid + start time (never a
 * bare pid), SIGTERM then SIGKILL; a helper journalled but never given a pid (svirt died
 * while spawning it), and any process a helper started, by the token in its environment.
 * Then forgets them. Idempotent: stop, cleanup, reconcile and a failed start's undo all call it.
 */
export async function endHelpers(env: LifecycleEnv, uuid: string): Promise<void> {
  const rec = env.store.getRunning(uuid);
  if (!rec || rec.helpers.length === 0) return;
  const ids: ProcessIdentity[] = rec.helpers.flatMap((h) =>
    h.pid !== null && h.startTime !== null ? [{ pid: h.pid, startTime: h.startTime }] : [],
  );
  ids.push(...processesWithTokens(new Set(rec.helpers.map((h) => h.token))).filter((p) => !ids.some((i) => i.pid === p.pid)));
  await Promise.all(ids.map((id) => endProcess(id)));
  env.store.updateRunning(uuid, { helpers: [] });
}

async function endProcess(id: ProcessIdentity): Promise<void> {
  if (!isAlive(id)) return;
  signal(id.pid, 'SIGTERM');
  if (await waitGone(id, 2000, 5)) return;
  if (isAlive(id)) signal(id.pid, 'SIGKILL');
  if (!(await waitGone(id, 10_000, 5))) {
    throw new SvirtError('SVIRT_ERR_TIMEOUT', `helper process ${id.pid} did not exit after SIGKILL`);
  }
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
