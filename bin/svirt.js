#!/usr/bin/env node
// The svirt CLI entry. `npm run build` makes dist/svirt.cjs, the CLI (dist/src/cli/main.js and
// everything it imports) bundled into one CommonJS file, dist/svirt-read.cjs and
// dist/svirt-core.cjs, the read verbs and the lifecycle verbs alone (src/cli/main-read.ts,
// main-core.ts), and for each a .cache file of V8's compiled code
// (scripts/bundle.mjs). Loading one file with its code cache instead of ~190 ES modules is what
// keeps a verb within a few ms of Node's own start (docs/startup.md). This file is CommonJS
// (bin/package.json): an ES module entry would start Node's ESM loader for nothing.
'use strict';
const { closeSync, constants, fstatSync, lstatSync, openSync, readFileSync, readSync, statSync, writeSync } = require('node:fs');
const { dirname, join, resolve } = require('node:path');

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

/** svirt's addon, loaded once (src/host/addon.ts finds it there); undefined when it is not built. */
function addonOf() {
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
  return loaded.get(ADDON);
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
  const addon = addonOf();
  if (typeof addon?.mapFile !== 'function') return undefined;
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
  // Required here, not at the top: a command handed to serve's warm worker loads no bundle.
  const { Script } = require('node:vm');
  const script = new Script(source, { filename: file, ...(cachedData ? { cachedData } : {}) });
  const mod = { exports: {} };
  // This file's own require: a bundle requires only Node's built-ins (its packages are inside
  // it, its addons loaded by path), and createRequire would load node:module (~0.5 ms).
  script.runInThisContext()(mod.exports, require, mod, file, dirname(file));
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

/** src/cli/warm-worker.ts's WARM_VERBS (a test holds them equal): a running serve's warm worker may run these. */
const WARM_VERBS = new Set(['list', 'dominfo', 'domstate', 'dumpxml', 'domuuid', 'define', 'undefine', 'destroy', 'shutdown', 'suspend', 'resume', 'reset', 'save', 'start', 'create', 'restore']);
/** The worker's socket in the monitor dir (warm-worker.ts's WARM_SOCKET_NAME). */
const WARM_SOCKET = 'cli.sock';
/** How long the CLI waits for a worker to take its connection before it runs the command itself. */
const WARM_HELLO_MS = 1000;

/** The state dir's monitor dir, as src/host/paths.ts resolves the state dir (a test holds them equal). */
function monitorDirOf(argv, env, uid) {
  let dir;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') break;
    if (a === '--state-dir') dir = argv[++i];
    else if (a.startsWith('--state-dir=')) dir = a.slice('--state-dir='.length);
  }
  dir ??= env.SVIRT_STATE_DIR;
  if (dir) return join(resolve(dir), 'run', 'monitor');
  if (uid === 0) return '/run/svirt/monitor';
  return join(env.XDG_RUNTIME_DIR ?? join('/tmp', `svirt-run-${uid}`), 'svirt', 'monitor');
}

/**
 * Which build of svirt this is: the full bundle's inode and mtime (the build replaces it by
 * rename). A worker of another build (svirt rebuilt or upgraded while serve ran) declines, and
 * ends so that serve starts one of this build.
 */
function buildOf() {
  const st = statSync(BUNDLE, { throwIfNoEntry: false });
  return st ? `${st.ino}:${st.mtimeMs}` : 'none';
}

/** Lines from the worker's socket (non-blocking), each within `waitMs` (-1: no limit); undefined when it closed or said too much. */
function lineReader(addon, fd) {
  const buf = Buffer.alloc(256);
  let pending = '';
  return (waitMs) => {
    for (;;) {
      const nl = pending.indexOf('\n');
      if (nl >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        return line;
      }
      if (pending.length > 256 || !addon.pollIn(fd, waitMs)) return undefined;
      let n;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (err) {
        if (err.code === 'EAGAIN') continue;
        return undefined;
      }
      if (n === 0) return undefined;
      pending += buf.toString('latin1', 0, n);
    }
  };
}

/**
 * Hands the command to the warm worker of a running `svirt serve` of this state dir
 * (src/cli/warm-worker.ts), which runs it with this process's fds, cwd, umask and environment,
 * already compiled and warm: its exit status, or undefined when this process must run it
 * (no worker, a busy one, a verb it does not run, a caller it does not serve). Nothing has run
 * until the worker says `ok`; after that, the worker's `exit N` is the command's.
 * SVIRT_NO_WARM=1 turns it off; a crash point (SVIRT_TEST_CRASH_AT) is never handed over.
 */
function delegate(argv) {
  const env = process.env;
  if (!WARM_VERBS.has(verbOf(argv)) || env.SVIRT_TEST_CRASH_AT || env.SVIRT_NO_WARM === '1') return undefined;
  const uid = process.getuid();
  if (uid !== process.geteuid() || process.getgid() !== process.getegid()) return undefined;
  const dir = monitorDirOf(argv, env, uid);
  if (lstatSync(join(dir, WARM_SOCKET), { throwIfNoEntry: false })?.isSocket() !== true) return undefined;
  const addon = addonOf();
  if (typeof addon?.pollIn !== 'function') return undefined;
  let fd;
  try {
    const dirFd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      // Only a dir of this uid that nobody else can use holds a worker to trust with this
      // process's terminal, cwd and environment: a socket in a dir someone else controls (a
      // --state-dir under /tmp) could be anybody's. And the one listening must be this uid.
      const st = fstatSync(dirFd);
      if (st.uid !== process.geteuid() || (st.mode & 0o077) !== 0) return undefined;
      fd = addon.connectUnixAt(dirFd, WARM_SOCKET, true);
      if (addon.peerCred(fd).uid !== process.geteuid()) {
        closeSync(fd);
        return undefined;
      }
    } finally {
      closeSync(dirFd);
    }
  } catch {
    return undefined; // nobody listens (a serve that ended), or a full backlog
  }
  try {
    const line = lineReader(addon, fd);
    let answer;
    try {
      if (line(WARM_HELLO_MS) !== 'ready') return undefined;
      const request = `${JSON.stringify({ argv, env, umask: process.umask(), build: buildOf() })}\n`;
      const cwd = openSync('.', constants.O_RDONLY | constants.O_DIRECTORY);
      try {
        if (addon.sendFds(fd, request, [0, 1, 2, cwd]) !== Buffer.byteLength(request)) return undefined;
      } finally {
        closeSync(cwd);
      }
      answer = line(-1);
    } catch {
      return undefined; // a closed fd 0-2, a cwd gone: this process runs it, and says what is wrong
    }
    if (answer !== 'ok') return undefined; // `no …`, or the worker went: nothing ran
    const m = /^exit (\d{1,3})$/.exec(line(-1) ?? '');
    if (m) return Number(m[1]);
    writeSync(2, "error: svirt serve's warm worker ended during the command; what it did is unknown (see svirt list)\n");
    return 1;
  } finally {
    closeSync(fd);
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
  const delegated = file === BUNDLE ? delegate(argv) : undefined;
  if (delegated !== undefined) process.exit(delegated);
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
else module.exports = { BUNDLE, READ_BUNDLE, CORE_BUNDLE, HOOK_BUNDLE, READ_VERBS, LIFECYCLE_VERBS, WARM_VERBS, CACHE_GROUPS, buildOf, bundleFor, cache, load, monitorDirOf, run };
