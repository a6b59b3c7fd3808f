#!/usr/bin/env node
// The svirt CLI entry. `npm run build` makes dist/svirt.cjs, the CLI (dist/src/cli/main.js and
// everything it imports) bundled into one CommonJS file, dist/svirt-read.cjs and
// dist/svirt-core.cjs, the read verbs and the lifecycle verbs alone (src/cli/main-read.ts,
// main-core.ts), and for each a .cache file of V8's compiled code
// (scripts/bundle.mjs). Loading one file with its code cache instead of ~190 ES modules is what
// keeps a verb within a few ms of Node's own start (docs/startup.md). This file is CommonJS
// (bin/package.json): an ES module entry would start Node's ESM loader for nothing.
'use strict';
const { readFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { dirname, join } = require('node:path');
const { Script } = require('node:vm');

const BUNDLE = join(__dirname, '..', 'dist', 'svirt.cjs');
/** The read verbs' bundle; a command it cannot finish runs again in BUNDLE (src/cli/subset-main.ts). */
const READ_BUNDLE = join(__dirname, '..', 'dist', 'svirt-read.cjs');
/** The lifecycle verbs' bundle (define, start, destroy, …): everything they import, no other verb. */
const CORE_BUNDLE = join(__dirname, '..', 'dist', 'svirt-core.cjs');
/** The monitor's lean reconcile entry (src/cli/hook.ts), run by bin/svirt-hook.js. */
const HOOK_BUNDLE = join(__dirname, '..', 'dist', 'svirt-hook.cjs');
/** svirt's addon: every verb loads it; here first, for its mapFile. */
const ADDON = join(__dirname, '..', 'native', 'out', 'svirt_native.node');

/** src/cli/verb-tables.ts's verbs (a test holds the lists equal): these start in READ_BUNDLE, */
const READ_VERBS = new Set(['list', 'dominfo', 'domstate', 'dumpxml', 'domuuid']);
/** and these in CORE_BUNDLE. */
const LIFECYCLE_VERBS = new Set(['define', 'undefine', 'create', 'start', 'shutdown', 'destroy', 'suspend', 'resume', 'reset']);
/** The options that take a value and may come before the verb (src/cli/args.ts has them all). */
const VALUED_BEFORE_VERB = new Set(['--state-dir', '--security-driver']);

/**
 * The verb, as far as a glance tells: the first word that is not an option or its value. Only
 * the choice of bundle rests on it; main parses the line itself, and the read bundle hands
 * anything that is not a read verb to the full one.
 */
function verbOf(argv) {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') return undefined;
    if (!a.startsWith('-')) return a;
    if (VALUED_BEFORE_VERB.has(a)) i++;
  }
  return undefined;
}

/**
 * Verbs with a code cache of their own (BUNDLE.GROUP.cache), made after running only them
 * (scripts/bundle.mjs): a cache holds every function its warm-up compiled, and V8 reads all of
 * it, so define does not pay for start's code, nor list for dominfo's. The others of a bundle
 * share its .cache.
 */
const CACHE_GROUPS = {
  [CORE_BUNDLE]: { define: 'define', undefine: 'define', start: 'start', create: 'start' },
  [READ_BUNDLE]: { list: 'list', dominfo: 'dominfo' },
};

/** The bundle a command starts in. */
function bundleFor(argv) {
  const verb = verbOf(argv);
  if (READ_VERBS.has(verb)) return READ_BUNDLE;
  return LIFECYCLE_VERBS.has(verb) ? CORE_BUNDLE : BUNDLE;
}

/**
 * A bundle (latin1: as a string) or a code cache mapped instead of read (the addon's mapFile,
 * native/map-file.c): a read copies the file into fresh pages, one page fault each (10-25 us
 * on the machines of issue 17), and a string copies it again into V8's heap; a mapping of the
 * page cache faults in 16 pages at a time and the string over it is never copied: about 260
 * page faults less for `svirt list`, 250 for `dominfo`. Undefined when the addon cannot do it
 * (not built, an older one, a map the kernel refuses): the file is read then. The addon stays loaded, where
 * src/host/addon.ts finds it.
 */
function mapped(path, latin1) {
  const loaded = (globalThis[Symbol.for('svirt.addons')] ??= new Map());
  if (!loaded.has(ADDON)) {
    const mod = { exports: {} };
    try {
      process.dlopen(mod, ADDON);
    } catch {
      return undefined; // not built: src/host/native.ts says so when a verb needs it
    }
    loaded.set(ADDON, mod.exports);
  }
  const addon = loaded.get(ADDON);
  if (typeof addon.mapFile !== 'function') return undefined;
  try {
    return addon.mapFile(path, latin1);
  } catch {
    return undefined; // not mappable here (an LSM's map permission, say): read it, which reports what is wrong
  }
}

/**
 * Compiles a bundle (a file that is one function expression, the wrapper Node gives a CommonJS
 * module: scripts/bundle.mjs writes it so, and its code cache matches), runs it, and returns
 * its exports and its Script. The file is ASCII (the build checks), so latin1 is the same text
 * without UTF-8 decoding. A cache V8 rejects (another Node, other flags) only costs the compile
 * it would have saved.
 */
function load(file, cachedData) {
  let source;
  try {
    source = mapped(file, true) ?? readFileSync(file, 'latin1');
  } catch (err) {
    process.stderr.write(`error: svirt is not built: run npm run build (${err.code ?? err.message}: ${file})\n`);
    process.exit(1);
  }
  const script = new Script(source, { filename: file, ...(cachedData ? { cachedData } : {}) });
  const mod = { exports: {} };
  script.runInThisContext()(mod.exports, createRequire(file), mod, file, dirname(file));
  return { exports: mod.exports, script };
}

function cache(file, argv = []) {
  const group = CACHE_GROUPS[file]?.[verbOf(argv)];
  const path = group ? `${file}.${group}.cache` : `${file}.cache`;
  try {
    const map = mapped(path, false);
    return map ? Buffer.from(map) : readFileSync(path);
  } catch {
    return undefined; // not made (yet): compiled from source
  }
}

/**
 * Runs a bundle's `main` on this process's arguments; its answer is the exit status. The read
 * and core bundles answer 'full' for a command they leave to the full bundle.
 *
 * When the command is done, every store is closed (the WAL checkpoint and its sync, as before
 * at Node's teardown) and the process exits at once: Node's teardown of the V8 heap that
 * process.exit skips (some 50 munmaps, each a TLB shootdown across Node's threads) cost
 * destroy and start 8-15 ms on the machines of session 10. Nothing is left to run by then:
 * output to a pipe or file is written synchronously on Linux, the verbs await their work,
 * and children svirt started live on by themselves.
 */
function run(file) {
  const argv = process.argv.slice(2);
  const loaded = [];
  const main = (f) => {
    const { exports } = load(f, cache(f, argv));
    loaded.push(exports);
    return exports.main(argv);
  };
  main(file === BUNDLE ? bundleFor(argv) : file)
    .then((code) => (code === 'full' ? main(BUNDLE) : code))
    .then((code) => {
      for (const exports of loaded) exports.closeOpenStores?.();
      process.exit(code);
    });
}

if (require.main === module) run(BUNDLE);
else module.exports = { BUNDLE, READ_BUNDLE, CORE_BUNDLE, HOOK_BUNDLE, READ_VERBS, LIFECYCLE_VERBS, CACHE_GROUPS, bundleFor, load, run };
