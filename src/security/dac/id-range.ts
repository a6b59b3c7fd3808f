import { readFileSync } from 'node:fs';
import { SvirtError } from '../../errors.js';

/** A block of ids: [first, first + count). */
export interface IdRange {
  readonly first: number;
  readonly count: number;
}

export const DEFAULT_ID_RANGE: IdRange = { first: 1_900_000_000, count: 100_000 };

/** `SVIRT_DAC_RANGE=first-last`, or the default block. */
export function idRangeFromEnv(text: string | undefined): IdRange {
  if (text === undefined || text === '') return DEFAULT_ID_RANGE;
  const m = /^(\d+)-(\d+)$/.exec(text);
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (!m || first < 1 || last < first || last > 0xfffffffe) {
    throw new SvirtError('SVIRT_ERR_USAGE', `SVIRT_DAC_RANGE must be FIRST-LAST with 1 <= FIRST <= LAST, got '${text}'`);
  }
  return { first, count: last - first + 1 };
}

/**
 * Picks a free id: a few random tries (cheap while the range is sparse), then one pass over
 * the range from a random offset, so the last free id is found and exhaustion is certain.
 * `reserve` is the store's atomic claim; `excluded` ids are never tried.
 */
export function allocateId(
  range: IdRange,
  excluded: (id: number) => boolean,
  reserve: (id: number) => boolean,
  random: () => number,
): number {
  for (let i = 0; i < 32; i++) {
    const id = range.first + Math.floor(random() * range.count);
    if (!excluded(id) && reserve(id)) return id;
  }
  const start = Math.floor(random() * range.count);
  for (let i = 0; i < range.count; i++) {
    const id = range.first + ((start + i) % range.count);
    if (!excluded(id) && reserve(id)) return id;
  }
  throw new SvirtError(
    'SVIRT_ERR_LABEL_EXHAUSTED',
    `no free dac id left in ${range.first}-${range.first + range.count - 1}: every id is in use by a running guest or a host account`,
  );
}

/** Ranges delegated in /etc/subuid and /etc/subgid: rootless containers map those ids, so a guest must not get one. */
export function subordinateRanges(files: readonly string[] = ['/etc/subuid', '/etc/subgid']): IdRange[] {
  const out: IdRange[] = [];
  for (const f of files) {
    let text = '';
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue; // no such file: nothing delegated
    }
    for (const line of text.split('\n')) {
      const [, start, count] = line.split(':');
      const first = Number(start);
      const n = Number(count);
      if (Number.isInteger(first) && Number.isInteger(n) && n > 0) out.push({ first, count: n });
    }
  }
  return out;
}

export function inRanges(id: number, ranges: readonly IdRange[]): boolean {
  return ranges.some((r) => id >= r.first && id < r.first + r.count);
}
