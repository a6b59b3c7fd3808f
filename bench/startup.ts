import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTimed } from './proc.js';
import { series, type Series } from './stats.js';
import { SVIRT_BIN, envWithoutExtraCerts } from './svirt-setup.js';

/** <package> root and its dist/ (the bench runs from dist/bench/). */
export const PKG = fileURLToPath(new URL('../../', import.meta.url));
const DIST = join(PKG, 'dist');

export interface StartupItem {
  readonly item: string;
  /** What the child process runs (shown in the JSON). */
  readonly code: string;
  readonly ms: Series;
  /** Median minus the median of `node -e ''` in the same environment. */
  readonly overNode?: number;
}

export interface StartupResult {
  readonly nodeEmpty: Series;
  readonly nodeEmptyNoCa: Series;
  readonly extraCaCerts: string | undefined;
  readonly items: StartupItem[];
}

function esm(code: string): string[] {
  return [process.execPath, '--input-type=module', '-e', code];
}

/** `import('<dist>/src/...')` of a compiled module, by absolute URL. */
function importDist(path: string, then = ''): string {
  return `await import(${JSON.stringify(new URL(`file://${join(DIST, path)}`).href)})${then};`;
}

/**
 * What a node process costs before svirt does anything, and what each dependency adds:
 * every item is a fresh process timed from spawn to exit, `runs` times.
 */
export async function startupCosts(runs: number, emptyStateDir: string): Promise<StartupResult> {
  const probes: { item: string; argv: string[]; env?: NodeJS.ProcessEnv }[] = [
    { item: "node -e ''", argv: [process.execPath, '-e', ''] },
    { item: "node -e '' without NODE_EXTRA_CA_CERTS", argv: [process.execPath, '-e', ''], env: envWithoutExtraCerts() },
    { item: "node --input-type=module -e ''", argv: esm('') },
    { item: 'better-sqlite3 (import)', argv: esm("await import('better-sqlite3');") },
    {
      item: 'better-sqlite3 (import + open :memory:)',
      argv: esm("const D = (await import('better-sqlite3')).default; new D(':memory:').close();"),
    },
    {
      item: 'better-sqlite3 (createRequire + open :memory:)',
      argv: esm(
        "const D = (await import('node:module')).createRequire(import.meta.url)('better-sqlite3'); new D(':memory:').close();",
      ),
    },
    { item: 'saxes (the XML tokenizer, import)', argv: esm("await import('saxes');") },
    { item: 'saxes (createRequire)', argv: esm("(await import('node:module')).createRequire(import.meta.url)('saxes');") },
    { item: 'node:crypto', argv: esm("await import('node:crypto');") },
    { item: 'src/domain (XML parse + format)', argv: esm(importDist('src/domain/index.js')) },
    { item: 'src/store/store.js (+ better-sqlite3)', argv: esm(importDist('src/store/store.js')) },
    { item: 'src/security/stack.js (dac, landlock, none drivers)', argv: esm(importDist('src/security/stack.js')) },
    {
      item: 'native addon (svirt_native.node: landlockAbi())',
      argv: esm(importDist('src/host/native.js', '.then((m) => m.landlockAbi())')),
    },
    { item: 'src/qemu/launcher.js (+ QMP client)', argv: esm(importDist('src/qemu/launcher.js')) },
    { item: 'src/lifecycle/hypervisor.js (everything start needs)', argv: esm(importDist('src/lifecycle/hypervisor.js')) },
    { item: 'src/cli/main.js, unbundled (the ES module the bundle is built from)', argv: esm(importDist('src/cli/main.js')) },
    { item: 'src/cli/commands/lifecycle.js (start/destroy verb)', argv: esm(importDist('src/cli/commands/lifecycle.js')) },
    { item: '`svirt help` (CLI, no verb module)', argv: [process.execPath, SVIRT_BIN, 'help'] },
    {
      item: '`svirt --security-driver none list` (empty store)',
      argv: [process.execPath, SVIRT_BIN, '--state-dir', emptyStateDir, '--security-driver', 'none', 'list'],
    },
    {
      item: '`svirt --security-driver dac,landlock list` (empty store)',
      argv: [process.execPath, SVIRT_BIN, '--state-dir', emptyStateDir, '--security-driver', 'dac,landlock', 'list'],
    },
  ];
  // Round-robin (one run of every probe, then the next round), so drift in the machine's
  // load spreads over all probes instead of favouring some.
  const samples = probes.map((): number[] => []);
  for (let i = 0; i <= runs; i++) {
    for (const [k, p] of probes.entries()) {
      const r = await runTimed(p.argv, { check: true, cwd: PKG, ...(p.env ? { env: p.env } : {}) });
      if (i > 0) samples[k]?.push(r.ms);
    }
  }
  const all = samples.map((x) => series(x));
  const nodeEmpty = all[0] as Series;
  const nodeEmptyNoCa = all[1] as Series;
  const items: StartupItem[] = probes.slice(2).map((p, k) => {
    const ms = all[k + 2] as Series;
    return { item: p.item, code: p.argv.slice(1).join(' '), ms, overNode: ms.summary.median - nodeEmpty.summary.median };
  });
  return { nodeEmpty, nodeEmptyNoCa, extraCaCerts: process.env['NODE_EXTRA_CA_CERTS'], items };
}

/** Marks (ms since the process started) that bench/cli-steps.ts prints. */
export interface CliStepsResult {
  readonly verb: string;
  readonly stack: string;
  readonly steps: { readonly step: string; readonly ms: Series }[];
}

/**
 * A CLI start split into its steps: bench/cli-steps.ts does what bin/svirt.js does for the
 * verb, importing modules one layer at a time, and prints when each step ended.
 */
export async function cliSteps(
  runs: number,
  stateDir: string,
  stack: string,
  verbs: { verb: string; arg: string; before?: () => Promise<void>; after?: () => Promise<void> }[],
  env?: NodeJS.ProcessEnv,
): Promise<CliStepsResult[]> {
  const script = fileURLToPath(new URL('./cli-steps.js', import.meta.url));
  // The code caches of cli-steps' bundle, made by each verb's untimed first run.
  const cacheDir = mkdtempSync(join(tmpdir(), 'svirt-cli-steps-'));
  const out: CliStepsResult[] = [];
  for (const v of verbs) {
    const steps = new Map<string, number[]>();
    for (let i = 0; i <= runs; i++) {
      await v.before?.();
      const r = await runTimed([process.execPath, script, stateDir, stack, v.verb, v.arg, cacheDir], {
        check: true,
        env: { ...(env ?? process.env), SVIRT_TRACE_STEPS: '1' }, // the verb's own steps (src/host/trace-steps.ts)
      });
      await v.after?.();
      if (i === 0) continue;
      const marks = JSON.parse(r.stdout.trim().split('\n').pop() ?? '[]') as [string, number][];
      let prev = 0;
      for (const [step, at] of marks) {
        const list = steps.get(step) ?? [];
        list.push(at - prev);
        steps.set(step, list);
        prev = at;
      }
      const exit = steps.get('spawn + exit (outside the script)') ?? [];
      exit.push(r.ms - prev);
      steps.set('spawn + exit (outside the script)', exit);
      const total = steps.get('total (spawn to exit)') ?? [];
      total.push(r.ms);
      steps.set('total (spawn to exit)', total);
    }
    out.push({ verb: v.verb, stack, steps: [...steps.entries()].map(([step, ms]) => ({ step, ms: series(ms) })) });
  }
  rmSync(cacheDir, { recursive: true, force: true });
  return out;
}

/** The static import closure of a compiled module: our files and the packages they pull in. */
export function importClosure(entry: string): { files: string[]; packages: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    const text = readFileSync(file, 'utf8');
    const re = /^\s*(?:import|export)\s+(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      const spec = m[1] as string;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec));
      else if (!spec.startsWith('node:')) packages.add(spec);
    }
  };
  visit(join(DIST, entry));
  return { files: [...files].map((f) => relative(DIST, f)).sort(), packages: [...packages].sort() };
}
