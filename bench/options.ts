import { STACKS } from './svirt-setup.js';

export const SECTIONS = [
  'startup',
  'raw',
  'library',
  'serve',
  'cli',
  'steps',
  'libvirt',
  'scale',
  'density',
  'devices',
  'migration',
] as const;
export type Section = (typeof SECTIONS)[number];

export interface BenchOptions {
  readonly quick: boolean;
  /** Timed runs per measurement (after one untimed warm-up). */
  readonly runs: number;
  readonly density: number;
  readonly out?: string;
  readonly withLibvirt: boolean;
  readonly stacks: readonly string[];
  readonly sections: ReadonlySet<Section>;
  /** Live reservations for the label measurement, and running records for reconcile. */
  readonly reservations: number;
  readonly records: number;
}

export const USAGE = `usage: npm run bench -- [--quick] [--runs N] [--density N] [--out FILE] [--with-libvirt]
                        [--stacks none,dac,...] [--only ${SECTIONS.join(',')}]
  --quick          3 runs each and 10 guests for density (what CI runs, so the bench cannot rot)
  --runs N         timed runs per measurement (default 20; one untimed warm-up comes first)
  --density N      paused guests running at once (default 200, quick 10)
  --out FILE       the JSON result (default bench/results/bench-<date>.json)
  --with-libvirt   install libvirt (apt) when missing and compare with virsh
  --stacks LIST    ';'-separated svirt stacks (default: ${STACKS.join(';')})
  --only LIST      run only these sections`;

export function parseOptions(argv: readonly string[]): BenchOptions {
  let quick = false;
  let runs: number | undefined;
  let density: number | undefined;
  let out: string | undefined;
  let withLibvirt = false;
  let stacks: string[] = [...STACKS];
  let sections = new Set<Section>(SECTIONS);
  const value = (i: number, name: string): string => {
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${name} needs a value\n${USAGE}`);
    return v;
  };
  const count = (v: string, name: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, not ${JSON.stringify(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    switch (a) {
      case '--quick':
        quick = true;
        break;
      case '--runs':
        runs = count(value(i++, a), a);
        break;
      case '--density':
        density = count(value(i++, a), a);
        break;
      case '--out':
        out = value(i++, a);
        break;
      case '--with-libvirt':
        withLibvirt = true;
        break;
      case '--stacks':
        stacks = value(i++, a)
          .split(';')
          .filter((s) => s !== '');
        break;
      case '--only': {
        const names = value(i++, a).split(',');
        for (const n of names)
          if (!(SECTIONS as readonly string[]).includes(n)) throw new Error(`unknown section '${n}' (${SECTIONS.join(', ')})`);
        sections = new Set(names as Section[]);
        break;
      }
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\n`);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option '${a}'\n${USAGE}`);
    }
  }
  return {
    quick,
    runs: runs ?? (quick ? 3 : 20),
    density: density ?? (quick ? 10 : 200),
    ...(out !== undefined ? { out } : {}),
    withLibvirt,
    stacks,
    sections,
    reservations: 10_000,
    records: 1_000,
  };
}
