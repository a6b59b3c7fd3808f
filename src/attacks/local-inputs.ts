/**
 * Special files where svirt wants a regular one (issue 12, items 9 and 10): a FIFO handed to
 * restore, /dev/zero (directly and through the user's link) and a FIFO handed to define.
 * Held means refused with an error at once, never blocked or reading without end.
 */
import { join } from 'node:path';
import { broken, firstError, held, type LocalCell, type LocalWorld, type RunResult } from './local-world.js';

/** What "at once" means: a whole CLI run (node start, store open) is ~0.3 s here. */
export const PROMPT_MS = 3000;
/** A command still running after this is killed and reported as blocked. */
const BOUND_MS = 15_000;

function judge(what: string, r: RunResult): string | undefined {
  if (r.timedOut) return `${what} blocked: killed after ${BOUND_MS / 1000} s`;
  if (r.code === 0) return `${what} was accepted`;
  if (r.ms > PROMPT_MS) return `${what} refused only after ${(r.ms / 1000).toFixed(1)} s`;
  return undefined;
}

export async function restoreFifo(w: LocalWorld): Promise<LocalCell> {
  const fifo = join(w.home, 'state.save');
  await w.userOk(['mkfifo', fifo]);
  const r = await w.svirt(['restore', fifo], BOUND_MS);
  const bad = judge('restore of a FIFO', r);
  if (bad) return broken(bad);
  return held(`refused in ${r.ms.toFixed(0)} ms: ${firstError(r)}`);
}

export async function defineDevZero(w: LocalWorld): Promise<LocalCell> {
  const link = join(w.home, 'guest.xml');
  const fifo = join(w.home, 'guest-fifo.xml');
  await w.userOk(['ln', '-s', '/dev/zero', link]);
  await w.userOk(['mkfifo', fifo]);
  const times: string[] = [];
  let first = '';
  for (const [what, path] of [
    ['define /dev/zero', '/dev/zero'],
    ["define of the user's link to /dev/zero", link],
    ['define of a FIFO', fifo],
  ] as const) {
    const r = await w.svirt(['define', path], BOUND_MS);
    const bad = judge(what, r);
    if (bad) return broken(bad);
    times.push(r.ms.toFixed(0));
    first ||= firstError(r);
  }
  return held(`all 3 refused in ${times.join('/')} ms: ${first}`);
}
