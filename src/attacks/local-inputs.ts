/**
 * Special files where svirt wants a regular one (issue 12, items 9 and 10): a FIFO handed to
 * restore or named as save's target, /dev/zero (directly and through the user's link) and a FIFO handed to define.
 * Held means refused with an error at once, never blocked or reading without end.
 */
import { join } from 'node:path';
import { makeRawImage } from './guests.js';
import { broken, firstError, guestXml, held, type LocalCell, type LocalWorld, type RunResult } from './local-world.js';

/**
 * "At once" is relative: a CLI run (node start, store open) takes ~0.3 s on an idle host and
 * several seconds on a loaded one. So each refusal is timed against a plain one made just
 * before (a missing file), and may take at most this much longer.
 */
export const PROMPT_MS = 2000;
/** A command still running after this is killed and reported as blocked (a FIFO read never ends). */
const BOUND_MS = 15_000;

function judge(what: string, r: RunResult, baseline: RunResult): string | undefined {
  if (r.timedOut) return `${what} blocked: killed after ${BOUND_MS / 1000} s`;
  if (r.code === 0) return `${what} was accepted`;
  if (!/^error: /m.test(r.stderr)) return `${what} failed without an error line: ${r.stderr.trim().slice(-120)}`;
  if (r.ms > baseline.ms + PROMPT_MS)
    return `${what} refused only after ${(r.ms / 1000).toFixed(1)} s (a missing file: ${(baseline.ms / 1000).toFixed(1)} s)`;
  return undefined;
}

export async function restoreFifo(w: LocalWorld): Promise<LocalCell> {
  const fifo = join(w.home, 'state.save');
  const out = join(w.home, 'out.save');
  await w.userOk(['mkfifo', fifo]);
  await w.userOk(['mkfifo', out]);
  const baseline = await w.svirt(['restore', join(w.home, 'missing.save')], BOUND_MS);
  const r = await w.svirt(['restore', fifo], BOUND_MS);
  const bad = judge('restore of a FIFO', r, baseline);
  if (bad) return broken(bad);
  // Root's guest saved over the user's FIFO: a blocking open would wait for a reader forever.
  await w.define('g', guestXml('g', makeRawImage(join(w.rootDir, 'g.img'), 4)));
  await w.ok(['start', 'g', '--paused']);
  const s = await w.svirt(['save', 'g', out], BOUND_MS);
  const badSave = judge('save over a FIFO', s, baseline);
  if (badSave) return broken(badSave);
  return held(
    `restore refused in ${r.ms.toFixed(0)} ms, save in ${s.ms.toFixed(0)} ms (a missing file: ${baseline.ms.toFixed(0)} ms): ${firstError(r)}`,
  );
}

export async function defineDevZero(w: LocalWorld): Promise<LocalCell> {
  const link = join(w.home, 'guest.xml');
  const fifo = join(w.home, 'guest-fifo.xml');
  await w.userOk(['ln', '-s', '/dev/zero', link]);
  await w.userOk(['mkfifo', fifo]);
  const baseline = await w.svirt(['define', join(w.home, 'missing.xml')], BOUND_MS);
  const times: string[] = [];
  let first = '';
  for (const [what, path] of [
    ['define /dev/zero', '/dev/zero'],
    ["define of the user's link to /dev/zero", link],
    ['define of a FIFO', fifo],
  ] as const) {
    const r = await w.svirt(['define', path], BOUND_MS);
    const bad = judge(what, r, baseline);
    if (bad) return broken(bad);
    times.push(r.ms.toFixed(0));
    first ||= firstError(r);
  }
  return held(`all 3 refused in ${times.join('/')} ms (a missing file: ${baseline.ms.toFixed(0)} ms): ${first}`);
}
