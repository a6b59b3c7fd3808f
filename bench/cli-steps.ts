/**
 * Does what `svirt --state-dir DIR --security-driver STACK VERB ARG` does, as bin/svirt.js does
 * it (dist/svirt.cjs and its code cache), split where the bundle lets it be split, and prints on
 * its last line a JSON list of [step, ms since the process started]. Run by bench/startup.ts
 * (cliSteps); not a user-facing command.
 *
 * The bundle is the CLI's own, with one change: esbuild's module initialiser wrapper (`__esm`)
 * also sums the time spent in initialisers, so "module initialisers" is apart from the verb's
 * own work. The changed source gets its own code cache, made by the untimed first run in
 * CACHE_DIR (one per verb); the timed runs use it as the CLI uses its cache.
 *
 *   node dist/bench/cli-steps.js STATE_DIR STACK start|destroy|define|list ARG CACHE_DIR
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

const marks: [string, number][] = [];
const mark = (step: string, at = performance.now()): void => {
  marks.push([step, at]);
};
mark('node bootstrap, until the script runs');

const [stateDir, stack, verb, arg, cacheDir] = process.argv.slice(2);
if (stateDir === undefined || stack === undefined || verb === undefined || arg === undefined || cacheDir === undefined) {
  process.stderr.write('usage: cli-steps.js STATE_DIR STACK VERB ARG CACHE_DIR\n');
  process.exit(2);
}

const BUNDLE = fileURLToPath(new URL('../svirt.cjs', import.meta.url));
const WRAPPER =
  'var __esm=(fn,res,err)=>function __init(){if(err)throw err[0];try{return fn&&(res=(0,fn[__getOwnPropNames(fn)[0]])(fn=0)),res}';
/** The same wrapper, timing the outermost initialiser of each chain (nested ones are inside it). */
const TIMED =
  'var __esm=(fn,res,err)=>function __init(){if(err)throw err[0];try{if(!fn)return res;const t0=performance.now();' +
  '__svirtInits.depth++;try{res=(0,fn[__getOwnPropNames(fn)[0]])(fn=0)}finally{__svirtInits.depth--;' +
  'if(__svirtInits.depth===0)__svirtInits.ms+=performance.now()-t0}return res}';
const inits = { ms: 0, depth: 0 };
(globalThis as { __svirtInits?: typeof inits }).__svirtInits = inits;

const text = readFileSync(BUNDLE, 'utf8');
if (!text.includes(WRAPPER)) throw new Error(`cli-steps: ${BUNDLE} has no esbuild __esm wrapper of the known form`);
const source = `(function (exports, require, module, __filename, __dirname) {${text.replace(WRAPPER, TIMED)}\n})`;
const cacheFile = join(cacheDir, `cli-steps-${verb}.cjs.cache`);
const cachedData = existsSync(cacheFile) ? readFileSync(cacheFile) : undefined;
mark('read the bundle and its code cache');
const script = new Script(source, { filename: BUNDLE, ...(cachedData ? { cachedData } : {}) });
mark(
  cachedData && !script.cachedDataRejected
    ? 'compile (V8 deserialises the code cache)'
    : 'compile (no code cache: this run makes it)',
);
const mod = { exports: {} as { main: (argv: readonly string[]) => Promise<number> } };
(script.runInThisContext() as (...a: unknown[]) => void)(mod.exports, createRequire(BUNDLE), mod, BUNDLE, dirname(BUNDLE));
mark("the bundle's top level");

const argv = ['--state-dir', stateDir, '--security-driver', stack, verb, ...(verb === 'list' ? [] : [arg])];
if (verb === 'start') argv.push('--paused');
const code = await mod.exports.main(argv);
const end = performance.now();
if (code !== 0) process.exit(code);
const before = marks[marks.length - 1]?.[1] ?? 0;
mark('module initialisers (the verb module and what it imports)', before + inits.ms);
mark(`the verb: store, stack, reconcile, ${verb}, output`, end);
if (!cachedData) writeFileSync(cacheFile, script.createCachedData());
process.stdout.write(`\n${JSON.stringify(marks)}\n`);
