/** Samples in milliseconds and their summary: min / median / max (and p90 for the curious). */
export interface Summary {
  readonly runs: number;
  readonly min: number;
  readonly median: number;
  readonly p90: number;
  readonly max: number;
  readonly mean: number;
}

export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) return { runs: 0, min: NaN, median: NaN, p90: NaN, max: NaN, mean: NaN };
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => {
    const pos = (s.length - 1) * q;
    const lo = Math.floor(pos);
    const hi = Math.ceil(pos);
    const a = s[lo] as number;
    const b = s[hi] as number;
    return a + (b - a) * (pos - lo);
  };
  return {
    runs: s.length,
    min: s[0] as number,
    median: at(0.5),
    p90: at(0.9),
    max: s[s.length - 1] as number,
    mean: s.reduce((x, y) => x + y, 0) / s.length,
  };
}

/** A measured series with its raw samples (kept in the JSON). */
export interface Series {
  readonly samples: number[];
  readonly summary: Summary;
}

export function series(samples: number[]): Series {
  return { samples: samples.map((x) => round(x, 3)), summary: roundSummary(summarize(samples)) };
}

function roundSummary(s: Summary): Summary {
  return {
    runs: s.runs,
    min: round(s.min, 3),
    median: round(s.median, 3),
    p90: round(s.p90, 3),
    max: round(s.max, 3),
    mean: round(s.mean, 3),
  };
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Milliseconds for a table cell: 1 decimal below 100 ms, none above. */
export function ms(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '–';
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 1) return x.toFixed(1);
  return x.toFixed(3);
}

export function ratio(x: number | undefined, base: number | undefined): string {
  if (x === undefined || base === undefined || !Number.isFinite(x) || !Number.isFinite(base) || base === 0) return '–';
  return `${(x / base).toFixed(2)}×`;
}

/** A markdown table; cells are escaped for pipes. */
export function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const esc = (c: string): string => c.replace(/\|/g, '\\|');
  const lines = [`| ${head.map(esc).join(' | ')} |`, `| ${head.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`];
  for (const r of rows) lines.push(`| ${r.map(esc).join(' | ')} |`);
  return lines.join('\n');
}

/** Shows a target as met or missed, with the numbers that decide it. */
export function verdict(met: boolean | undefined): string {
  if (met === undefined) return 'not measured';
  return met ? 'met' : '**missed**';
}
