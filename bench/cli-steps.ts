/**
 * Does what `svirt --state-dir DIR --security-driver STACK VERB ARG` does, as bin/svirt.js does
 * it (the bundle it picks for the verb, and a code cache), split where the bundle lets it be
 * split, and prints on its last line a JSON list of [step, ms since the process started]. Run
 * by bench/startup.ts (cliSteps); not a user-facing command.
 *
 * The bundle is the CLI's own, unchanged. It is minified, so its module initialisers cannot be
 * found and timed apart (as they were before session 10): they are part of the verb's step,
 * which is split at the lifecycle steps svirt traces itself (SVIRT_TRACE_STEPS=1).
 * The code cache is made by the untimed first run in CACHE_DIR (one per verb), after that verb
 * alone, as the CLI's own caches are made after few verbs; the timed runs use it.
 *
 *   node dist/bench/cli-steps.js STATE_DIR STACK start|destroy|define|list ARG CACHE_DIR
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';

const marks: [string, number][] = [];
// ms since the process started, as the steps svirt traces (src/host/trace-steps.ts) are
const now = (): number => process.uptime() * 1000;
const mark = (step: string, at = now()): void => {
  marks.push([step, at]);
};
mark('node bootstrap, until the script runs');

const [stateDir, stack, verb, arg, cacheDir] = process.argv.slice(2);
if (stateDir === undefined || stack === undefined || verb === undefined || arg === undefined || cacheDir === undefined) {
  process.stderr.write('usage: cli-steps.js STATE_DIR STACK VERB ARG CACHE_DIR\n');
  process.exit(2);
}

const argv = ['--state-dir', stateDir, '--security-driver', stack, verb, ...(verb === 'list' ? [] : [arg])];
if (verb === 'start') argv.push('--paused');
const bin = createRequire(import.meta.url)('../../bin/svirt.js') as { bundleFor: (argv: readonly string[]) => string };
const BUNDLE = bin.bundleFor(argv);
const source = readFileSync(BUNDLE, 'latin1'); // ASCII, already the CommonJS wrapper (scripts/bundle.mjs)
const cacheFile = join(cacheDir, `cli-steps-${verb}.cjs.cache`);
const cachedData = existsSync(cacheFile) ? readFileSync(cacheFile) : undefined;
mark('read the bundle and its code cache');
const script = new Script(source, { filename: BUNDLE, ...(cachedData ? { cachedData } : {}) });
mark(
  cachedData && !script.cachedDataRejected
    ? 'compile (V8 deserialises the code cache)'
    : 'compile (no code cache: this run makes it)',
);
const mod = { exports: {} as { main: (argv: readonly string[]) => Promise<number | 'full'> } };
(script.runInThisContext() as (...a: unknown[]) => void)(mod.exports, createRequire(BUNDLE), mod, BUNDLE, dirname(BUNDLE));
mark("the bundle's top level");

const code = await mod.exports.main(argv);
const end = now();
if (code !== 0) process.exit(code === 'full' ? 3 : code); // 'full': the read bundle handed it on (not measured)
// The verb split at the steps svirt traced (SVIRT_TRACE_STEPS=1, set by bench/startup.ts): the
// time up to each is the work before it; a verb without crash points has none.
const { tracedSteps } = await import('../src/host/trace-steps.js'); // after the timed part
const steps = tracedSteps();
let first = true;
for (const [step, at] of steps) {
  mark(first ? `module initialisers and the verb, until ${step}` : `… until ${step}`, at);
  first = false;
}
mark(
  first
    ? `module initialisers and the verb: store, stack, reconcile, ${verb}, output`
    : `… the rest of ${verb}: its last steps, output, audit, store closed`,
  end,
);
if (!cachedData) writeFileSync(cacheFile, script.createCachedData());
process.stdout.write(`\n${JSON.stringify(marks)}\n`);
