/**
 * MCS category pairs: the allowed range, its capacity, and the allocator that picks a
 * random free pair and reserves it in the store.
 */
import { SvirtError } from '../../errors.js';
import type { DriverName, LabelReservations } from '../driver.js';
import { formatLevel, highLevel, lowLevel } from './contexts.js';

/** A contiguous category range `sS:cMIN.cMAX` that dynamic labels draw pairs from. */
export interface CategoryRange {
  readonly sensitivity: number;
  readonly min: number;
  readonly max: number;
}

/** The default: every category of the reference policies (1024 of them). */
export const DEFAULT_CATEGORY_RANGE = 's0:c0.c1023';

/**
 * Parses `c10.c99`, `s0:c10.c99` or a process range like `s0-s0:c0.c1023` (the
 * sensitivity comes from the low level, the categories from the high level).
 */
export function parseCategoryRange(text: string): CategoryRange {
  const full = /^s\d/.test(text) ? text : `s0:${text}`;
  let sensitivity: number;
  let categories: readonly number[];
  try {
    sensitivity = lowLevel(full).sensitivity;
    categories = highLevel(full).categories;
  } catch (err) {
    throw new SvirtError('SVIRT_ERR_USAGE', `invalid MCS category range "${text}"`, { cause: err });
  }
  const min = categories[0];
  const max = categories[categories.length - 1];
  if (min === undefined || max === undefined || max - min + 1 !== categories.length || categories.length < 2) {
    throw new SvirtError(
      'SVIRT_ERR_USAGE',
      `invalid MCS category range "${text}": it needs at least two contiguous categories, like c0.c1023`,
    );
  }
  return { sensitivity, min, max };
}

export function formatCategoryRange(range: CategoryRange): string {
  return `s${range.sensitivity}:c${range.min}.c${range.max}`;
}

/** Number of distinct unordered pairs: n(n−1)/2 for n categories. */
export function pairCapacity(range: CategoryRange): number {
  const n = range.max - range.min + 1;
  return (n * (n - 1)) / 2;
}

/**
 * The k-th pair (0 ≤ k < capacity) in colexicographic order: k = b(b−1)/2 + a, a < b,
 * with a and b counted from the range's first category.
 */
export function pairAt(range: CategoryRange, k: number): readonly [number, number] {
  let b = Math.floor((1 + Math.sqrt(1 + 8 * k)) / 2);
  // Correct a floating-point off-by-one near perfect squares.
  while ((b * (b - 1)) / 2 > k) b--;
  while (((b + 1) * b) / 2 <= k) b++;
  const a = k - (b * (b - 1)) / 2;
  return [range.min + a, range.min + b];
}

/** The level of a pair, e.g. `s0:c12,c345`; the key the store reserves. */
export function pairLevel(range: CategoryRange, pair: readonly [number, number]): string {
  return formatLevel({ sensitivity: range.sensitivity, categories: [...pair] });
}

/**
 * A store that can list what it holds (src/store's Store can): the scan then reads the
 * reservations once instead of trying each pair against the database.
 */
interface ListsReservations {
  reservedLabels(driver: DriverName): readonly string[];
}

function listsReservations(r: LabelReservations): r is LabelReservations & ListsReservations {
  return typeof (r as Partial<ListsReservations>).reservedLabels === 'function';
}

/** Consecutive random collisions after which the allocator scans every pair instead. */
const RANDOM_TRIES = 64;

export interface AllocationResult {
  readonly level: string;
  /** Random picks tried, and pairs scanned when it fell back to the scan. */
  readonly tries: number;
  readonly scanned: number;
}

/**
 * Picks a random pair and reserves it for `uuid`. Random picks are uniform over pairs
 * (no c1 = c2 retries); when RANDOM_TRIES picks in a row are taken, the range is nearly
 * full and every pair is tried once from a random start, so the last free pair is found
 * and a full range fails with SVIRT_ERR_LABEL_EXHAUSTED instead of spinning.
 */
export function allocatePair(
  range: CategoryRange,
  reservations: LabelReservations,
  uuid: string,
  random: () => number,
  guestName: string,
): AllocationResult {
  const capacity = pairCapacity(range);
  const pick = (): number => Math.min(capacity - 1, Math.floor(random() * capacity));
  for (let tries = 1; tries <= RANDOM_TRIES; tries++) {
    const level = pairLevel(range, pairAt(range, pick()));
    if (reservations.tryReserve('selinux', level, uuid)) return { level, tries, scanned: 0 };
  }
  const held = listsReservations(reservations) ? new Set(reservations.reservedLabels('selinux')) : undefined;
  const start = pick();
  for (let i = 0; i < capacity; i++) {
    const level = pairLevel(range, pairAt(range, (start + i) % capacity));
    if (held?.has(level) === true) continue;
    if (reservations.tryReserve('selinux', level, uuid)) return { level, tries: RANDOM_TRIES, scanned: i + 1 };
  }
  const text = formatCategoryRange(range);
  throw new SvirtError(
    'SVIRT_ERR_LABEL_EXHAUSTED',
    `cannot allocate an SELinux label for guest "${guestName}": all ${capacity} category pairs of ${text} are in use`,
    { details: { range: text, capacity, inUse: reservations.count('selinux') } },
  );
}
