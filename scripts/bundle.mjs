// Builds the CLI's start-up form (issue 17), the last step of `npm run build:ts`:
//   dist/svirt.cjs         dist/src/cli/main.js and everything it imports (saxes and
//                          better-sqlite3's JavaScript too) in one CommonJS file;
//   dist/svirt.cjs.cache   V8's compiled code for it, made after running a few verbs in a
//                          scratch state dir, so those verbs' functions are in it (start and
//                          destroy of a paused guest too, where QEMU is installed);
//   dist/svirt-read.cjs    the read verbs alone (src/cli/main-read.ts: list, dominfo, domstate,
//   (and .cache)           dumpxml, domuuid), every other dynamic import left out (below);
//   dist/svirt-core.cjs    the lifecycle verbs (src/cli/main-core.ts: define, start, destroy, …)
//   (and .cache)           and everything they import, no other verb;
//   dist/svirt-hook.cjs    the same for src/cli/hook.ts, the monitor's lean reconcile entry
//   (and .cache)           (the store and the restore path only).
// Each is minified (in this VM a page of memory first touched costs ~10-25 us, so bytes read,
// copied and compiled are what a verb's start pays for), ASCII only, and already wrapped in
// the function Node gives a CommonJS module, so bin/svirt.js compiles the file as it reads it.
// bin/svirt.js and bin/svirt-hook.js load them. The source tree and dist/src/ stay as they are:
// tests and the library import dist/src/; only the two entries run bundles.
//
// Node built-ins other than those Node's own start has already loaded are bundled as lazy
// shims: `import { spawn } from 'node:child_process'` becomes a getter that requires the module
// the first time a verb uses it (a CommonJS bundle reads imports as properties at each use),
// so `svirt list` does not pay for child_process, net, crypto or stream.
//   node scripts/bundle.mjs            (after tsc; needs dist/src/)
//   node scripts/bundle.mjs --warm     (internal: the cache-making child)
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve as resolvePath, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
const { BUNDLE, READ_BUNDLE, CORE_BUNDLE, HOOK_BUNDLE, load } = require('../bin/svirt.js');

/**
 * The dynamic imports the read bundle keeps (paths under dist/src/): what its verbs run on a
 * quiet host. Every other one becomes a stand-in that hands the command to the full bundle
 * (src/cli/main-read.ts). The warm-up below fails the build if a read verb reaches a stand-in
 * in its scratch state dir, so this list cannot fall short of the quiet path unnoticed.
 */
const READ_KEEPS = new Set([
  'cli/commands/list.js',
  'cli/commands/dominfo.js',
  'cli/commands/dumpxml.js',
  'access/cli-gate.js',
  'access/rules.js',
  'domain/index.js',
  'lifecycle/cgroup/describe.js',
  'security/selinux/factory.js',
  'security/apparmor/factory.js',
]);

/** The read bundle's stand-in for a left-out import: names it, calls main-read's handler, never settles. */
const LEFT_OUT = [
  'const __svirtLeftOut = (p) => {',
  '  globalThis[Symbol.for("svirt.leftOutPath")] = p;',
  '  const h = globalThis[Symbol.for("svirt.leftOut")];',
  '  if (h === undefined) throw new Error(`svirt: ${p} is not in the read bundle`);',
  '  h(p);',
  '  return new Promise(() => {});',
  '};',
].join('');

/** The wrapper Node gives a CommonJS module, around the whole file (bin/svirt.js compiles it as is). */
const WRAP_OPEN = '(function (exports, require, module, __filename, __dirname) {';
const WRAP_CLOSE = '\n})';

/**
 * Built-ins a `node FILE` start has loaded already: importing them costs nothing, so they stay
 * plain. Not `node:module` (its first require loads four more of Node's modules, ~0.5 ms) nor
 * `node:vm` (~0.1 ms): svirt imports only names from them, so they get a shim like the others.
 */
const LOADED_AT_START = new Set(['node:fs', 'node:path', 'node:url']);
/** Built-ins whose exports are a function, but that svirt's code imports only names from: a shim serves those names. */
const NAMES_ONLY = new Set(['node:module', 'node:vm']);

/**
 * A lazy shim of a built-in whose exports are a plain object (not a function: a default import
 * of `events` or `assert` must be the function itself, so those stay plain requires).
 *
 * Its getters sit on the prototype of an object with no property of its own. esbuild wraps a
 * CommonJS module in `__toESM` for every module that imports it, which copies each *own*
 * property as a new getter closure: with `util`'s, `net`'s and `child_process`'s ~100 names
 * imported by a dozen modules, that was ~280 kB of allocation and ~1.5 ms of every lifecycle
 * verb (issue 17). `__toESM`'s object inherits from the same prototype, so a named import still
 * reaches the real export on first use, and a default import is the shim itself.
 */
function lazyShim(name) {
  const mod = require(name);
  if ((typeof mod !== 'object' || mod === null) && !NAMES_ONLY.has(name)) return undefined;
  const keys = Object.keys(mod).filter((k) => /^[A-Za-z_$][\w$]*$/.test(k));
  return [
    `let m;`,
    `const l = () => (m ??= require(${JSON.stringify(name)}));`,
    `module.exports = Object.create({`,
    ...keys.map((k) => `  get ${k}() { return l().${k}; },`),
    `});`,
  ].join('\n');
}

const SOURCEMAP = process.env['SVIRT_BUNDLE_SOURCEMAP'] === '1';

/** better-sqlite3's methods svirt never calls: their modules load at their first call (below). */
const SQLITE_METHODS_UNUSED = [
  ...['transaction', 'backup', 'serialize', 'function', 'aggregate', 'table'].map((m) => ({ key: `.${m}`, file: m })),
  { key: '[util.inspect]', file: 'inspect' },
];

async function bundle(entry, outfile, keeps) {
  const esbuild = await import('esbuild');
  // Written beside it and renamed over it: bin/svirt.js maps the bundle (native/map-file.c), and
  // a file truncated in place under a running command's mapping would fault it (SIGBUS).
  const final = outfile;
  outfile = `${final}.tmp`;
  const builtins = new Set(builtinModules.flatMap((b) => [b, `node:${b}`]));
  await esbuild.build({
    entryPoints: [join(root, entry)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // Names go too (a third of the bytes that whitespace leaves); SVIRT_DEBUG=1 stacks name
    // minified functions: dist/src/ is the same code with names, for a library caller or a debugger.
    minify: true,
    charset: 'ascii',
    // SVIRT_BUNDLE_SOURCEMAP=1: BUNDLE.map beside each bundle, for scripts/verb-modules.mjs.
    sourcemap: SOURCEMAP,
    logLevel: 'warning',
    // The bundle's own URL where a module asked for its own (createRequire, the package root).
    // Made when first read: pathToFileURL is ~0.4 ms in a fresh process, and no quiet path reads it.
    define: { 'import.meta.url': '__svirtMeta.url' },
    banner: {
      js: `${WRAP_OPEN}const __svirtMeta = { get url() { return require("node:url").pathToFileURL(__filename).href; } };${keeps ? LEFT_OUT : ''}`,
    },
    footer: { js: WRAP_CLOSE },
    external: ['*.node'],
    plugins: [
      {
        name: 'svirt',
        setup(b) {
          // createRequire(import.meta.url)('saxes') loads a package at its first use and keeps the
          // ES module build cheap (dist/src/); here a plain require lets esbuild bundle the
          // package, still loaded at its first use.
          b.onLoad({ filter: /[\\/]dist[\\/]src[\\/].*\.js$/ }, (a) => {
            let contents = readFileSync(a.path, 'utf8')
              .replace(/createRequire\(import\.meta\.url\)\('(saxes|better-sqlite3|smol-toml)'\)/g, "require('$1')")
              // The bundle's own path, with no URL made and parsed back (~0.5 ms in a fresh process).
              .replace(/fileURLToPath\(import\.meta\.url\)/g, '__filename');
            if (keeps) contents = leaveOut(contents, a.path, keeps);
            return { contents, loader: 'js' };
          });
          // better-sqlite3 loads the modules of all its methods when it loads; svirt calls none
          // of these (its transactions are its own: src/store/transaction.ts), and backup's alone
          // made `promisify(fs.access)` in every command that opens the store (~0.3 ms). Each is
          // now loaded by its first call. The build fails if a line is no longer there to change.
          b.onLoad({ filter: /[\\/]better-sqlite3[\\/]lib[\\/]database\.js$/ }, (a) => {
            let text = readFileSync(a.path, 'utf8');
            for (const m of SQLITE_METHODS_UNUSED) {
              const eager = `Database.prototype${m.key} = require('./methods/${m.file}');`;
              if (!text.includes(eager)) throw new Error(`${a.path} no longer has "${eager}": update scripts/bundle.mjs`);
              text = text.replace(eager, `Database.prototype${m.key} = function (...args) { return require('./methods/${m.file}').apply(this, args); };`);
            }
            return { contents: text, loader: 'js' };
          });
          b.onResolve({ filter: /^[a-z_:/]+$/ }, (a) => {
            if (!builtins.has(a.path)) return undefined;
            const name = a.path.startsWith('node:') ? a.path : `node:${a.path}`;
            if (a.namespace === 'lazy' || LOADED_AT_START.has(name) || lazyShim(name) === undefined) {
              return { path: name, external: true };
            }
            return { path: name, namespace: 'lazy' };
          });
          b.onLoad({ filter: /.*/, namespace: 'lazy' }, (a) => ({ contents: lazyShim(a.path), loader: 'js' }));
        },
      },
    ],
  });
  const text = readFileSync(outfile, 'latin1');
  if (/\bimport\(/.test(text.replace(/"[^"\n]*"|'[^'\n]*'/g, ''))) {
    throw new Error(`${outfile} has a dynamic import() left: it would need an ES module loader`);
  }
  // bin/svirt.js reads the file as latin1 (no UTF-8 decoding): that is only the same text in ASCII.
  if (/[^\x00-\x7f]/.test(text)) throw new Error(`${outfile} is not ASCII`);
  renameSync(outfile, final);
  if (SOURCEMAP) renameSync(`${outfile}.map`, `${final}.map`);
}

/** In a module of dist/src/ (at `file`), every `import('…')` outside `keeps` becomes the left-out stand-in. */
function leaveOut(source, file, keeps) {
  const from = dirname(file);
  return source.replace(/\bimport\((['"])(\.[^'"]+)\1\)/g, (all, _q, spec) => {
    const target = relative(join(root, 'dist', 'src'), resolvePath(from, spec)).split(sep).join('/');
    return keeps.has(target) ? all : `__svirtLeftOut(${JSON.stringify(target)})`;
  });
}

const DEFINITION = `<domain type='qemu'>
  <name>warm</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/nonexistent/warm.img'/><target dev='vda' bus='virtio'/></disk>
    <interface type='user'><model type='virtio'/></interface>
    <serial type='pty'/><console type='pty'/>
  </devices>
</domain>
`;

/** A guest that really starts (paused, no NIC): its start and stop paths get into the cache. */
const RUNNABLE = (image) => `<domain type='qemu'>
  <name>warm-run</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${image}'/><target dev='vda' bus='virtio'/></disk>
    <controller type='usb' model='none'/><memballoon model='none'/>
  </devices>
</domain>
`;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function gone(pid, ms) {
  for (let t = 0; t < ms && pid && alive(pid); t += 10) await sleep(10);
}

/**
 * `core` holds the loaded bundle each group of verbs runs in (rest, define, start); `reads`
 * runs read verbs on the running guest; without `reads` and `hook` (a group's child) those are skipped.
 * Where QEMU is installed: starts and destroys a paused guest under the warm-up's stack (warmStack: what
 * `start` and `destroy` run, compiled into the CLI's cache), then starts it again, kills its
 * QEMU and runs the hook's cleanup in-process (the hook's path, into its cache). Without QEMU
 * the starts fail, which only leaves that code out of the caches (compiled when first run).
 * Every process it starts is waited for: the guest's QEMU and its monitor.
 */
async function warmGuest(cli, core, reads, hook, dir, base) {
  if (!existsSync('/usr/bin/qemu-system-x86_64')) return;
  const image = join(dir, 'warm.img');
  writeFileSync(image, '');
  truncateSync(image, 1024 * 1024);
  const xml = join(dir, 'run.xml');
  writeFileSync(xml, RUNNABLE(image));
  const state = base[1];
  const db = () => new (require('better-sqlite3'))(join(state, 'svirt.db'), { readonly: true });
  const record = () => {
    const d = db();
    try {
      return d.prepare("SELECT pid, monitor_pid AS monitor FROM running WHERE name = 'warm-run'").get();
    } finally {
      d.close();
    }
  };
  await core.define.exports.main([...base, 'define', xml]);
  try {
    if ((await core.start.exports.main([...base, 'start', 'warm-run', '--paused'])) !== 0) return;
    const first = record();
    if (reads) await reads(base, 'warm-run');
    for (const v of [['list'], ['dominfo', 'warm-run']]) await cli.main([...base, ...v]);
    await core.rest.exports.main([...base, 'destroy', 'warm-run']);
    await gone(first?.monitor, 5000);
    if (!hook) return;
    if ((await core.start.exports.main([...base, 'start', 'warm-run', '--paused'])) !== 0) return;
    const second = record();
    if (second?.pid) {
      // The monitor goes first, so its own hook (svirt-cleanup, or a Node entry) never runs:
      // the cleanup below is then always the hook bundle's, and its cache always holds it.
      if (second.monitor) {
        process.kill(second.monitor, 'SIGKILL');
        await gone(second.monitor, 5000);
      }
      process.kill(second.pid, 'SIGKILL');
      await gone(second.pid, 5000);
      await hook.main([state]);
    }
    await core.rest.exports.main([...base, 'destroy', 'warm-run']); // in case the monitor's own hook was first
    await gone(second?.monitor, 5000);
  } finally {
    await core.define.exports.main([...base, 'undefine', 'warm-run']);
  }
}

function writeCache(file, script, group) {
  const cache = group ? `${file}.${group}.cache` : `${file}.cache`;
  writeFileSync(`${cache}.tmp`, script.createCachedData());
  renameSync(`${cache}.tmp`, cache);
}

/**
 * Runs read verbs in the read bundle: each must finish there. One that reaches a left-out import
 * in a scratch state dir would move every such command to the full bundle: the build fails,
 * naming the import to add to READ_KEEPS.
 */
async function readVerbs(read, base, name, only) {
  const verbs = [['list', '--all'], ['list'], ['--json', 'list'], ['dominfo', name], ['domstate', name], ['dumpxml', name], ['domuuid', name]];
  for (const v of verbs.filter((x) => only === undefined || x[0] === only || x[1] === only)) {
    if ((await read.main([...base, ...v])) === 'full') {
      const path = globalThis[Symbol.for('svirt.leftOutPath')];
      throw new Error(`the read bundle's '${v.join(' ')}' needs ${path ?? 'the full bundle'}: add it to READ_KEEPS`);
    }
  }
}

/**
 * The security stack the warm-up runs its verbs under: this host's own (`auto`, what a verb
 * without --security-driver gets) without an LSM driver, so `dac` and `landlock` where they
 * probe enabled. Every verb builds its stack, and `start` and `destroy` run its drivers: code
 * the warm-up did not run is compiled in every command instead of read from the cache (under
 * `none`, each verb of a dac,landlock host compiled both drivers anew: issue 17, session 23).
 * An SELinux or AppArmor driver is left out: the warm-up would load a policy for a scratch guest.
 * `none` where the stack cannot be built.
 */
async function warmStack() {
  try {
    const { buildStack } = await import('../dist/src/security/stack.js');
    const names = (await buildStack('auto', { env: process.env })).names.filter((n) => n === 'dac' || n === 'landlock');
    return names.length > 0 ? names.join(',') : 'none';
  } catch {
    return 'none';
  }
}

/** In the child: runs verbs that touch nothing outside a scratch state dir, then writes the caches. */
async function warm() {
  const { exports, script } = load(BUNDLE, undefined);
  const read = load(READ_BUNDLE, undefined);
  // Only this cache of the core bundle: its define and start ones are made by children of their
  // own (warmGroup), since V8 shares one compiled copy of a source among a process's Scripts.
  const core = load(CORE_BUNDLE, undefined);
  const full = { exports, script };
  const byGroup = { rest: core, define: full, start: full };
  const hook = load(HOOK_BUNDLE, undefined);
  const dir = mkdtempSync(join(tmpdir(), 'svirt-bundle-'));
  try {
    chmodSync(dir, 0o711);
    const xml = join(dir, 'warm.xml');
    writeFileSync(xml, DEFINITION);
    const base = ['--state-dir', join(dir, 'state'), '--security-driver', await warmStack()];
    const verbs = [
      ['list', '--all'],
      ['define', xml],
      ['list', '--all'],
      ['dominfo', 'warm'],
      ['dumpxml', 'warm'],
      ['domstate', 'warm'],
      ['profile', xml, '--driver', 'dac'],
      ['destroy', 'warm'],
      ['undefine', 'warm'],
    ];
    for (const v of verbs) {
      await exports.main([...base, ...v]);
      if (v[0] === 'define') await readVerbs(read.exports, base, 'warm');
    }
    await exports.main([...base, 'define', xml]);
    await core.exports.main([...base, 'destroy', 'warm']);
    await exports.main([...base, 'undefine', 'warm']);
    for (const v of [['list'], ['--json', 'list']]) await exports.main(['--state-dir', join(dir, 'state'), ...v]);
    await hook.exports.main([join(dir, 'state')]);
    await warmGuest(exports, byGroup, (b, n) => readVerbs(read.exports, b, n), hook.exports, dir, base);
  } finally {
    rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  }
  writeCache(BUNDLE, script);
  writeCache(READ_BUNDLE, read.script);
  writeCache(CORE_BUNDLE, core.script);
  writeCache(HOOK_BUNDLE, hook.script);
}

/**
 * In a child of its own: a bundle's cache for one group of verbs (bin/svirt.js CACHE_GROUPS),
 * made after running only those in it: the core bundle's for define and start, the read
 * bundle's for list and dominfo. The full bundle (another source, so other compiled code)
 * defines and removes the guests around them.
 */
async function warmGroup(group) {
  const readGroup = group === 'list' || group === 'dominfo';
  const file = readGroup ? READ_BUNDLE : CORE_BUNDLE;
  const own = load(file, undefined);
  const other = load(BUNDLE, undefined).exports;
  const dir = mkdtempSync(join(tmpdir(), 'svirt-bundle-'));
  try {
    chmodSync(dir, 0o711);
    const base = ['--state-dir', join(dir, 'state'), '--security-driver', await warmStack()];
    const xml = join(dir, 'warm.xml');
    writeFileSync(xml, DEFINITION);
    const full = { exports: other };
    if (readGroup) {
      // An empty store, a guest shut off, the error of a guest that is not there, a running guest.
      const reads = (b, n) => readVerbs(own.exports, b, n, group);
      if (group === 'list') await reads(base, 'warm');
      await other.main([...base, 'define', xml]);
      await reads(base, 'warm');
      if (group === 'dominfo') await own.exports.main([...base, 'dominfo', 'nosuch']);
      await other.main([...base, 'undefine', 'warm']);
      await warmGuest(other, { rest: full, define: full, start: full }, reads, undefined, dir, base);
    } else if (group === 'define') {
      // The second undefine finds no guest: its error path goes into the cache too.
      for (const v of [['define', xml], ['undefine', 'warm'], ['undefine', 'warm']]) await own.exports.main([...base, ...v]);
    } else {
      await own.exports.main([...base, 'start', 'nosuch']);
      await warmGuest(other, { rest: full, define: full, start: own }, undefined, undefined, dir, base);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  }
  writeCache(file, own.script, group);
}

if (process.argv[2] === '--warm') {
  await warm();
} else if (process.argv[2] === '--warm-group') {
  await warmGroup(process.argv[3]);
} else {
  await bundle('dist/src/cli/main.js', BUNDLE);
  await bundle('dist/src/cli/main-read.js', READ_BUNDLE, READ_KEEPS);
  await bundle('dist/src/cli/main-core.js', CORE_BUNDLE);
  await bundle('dist/src/cli/hook.js', HOOK_BUNDLE);
  // A part bundle is worth its file only while it stays small: an import that pulls the
  // lifecycle into the read bundle, or the remote protocol into the core one, fails the build.
  const bytes = (f) => readFileSync(f).length;
  for (const [f, most] of [[READ_BUNDLE, 0.5], [CORE_BUNDLE, 0.75]]) {
    if (bytes(f) > most * bytes(BUNDLE)) throw new Error(`${f} is ${bytes(f)} bytes, over ${most} of the full bundle's ${bytes(BUNDLE)}`);
  }
  // Children, so the verbs' output and Node's state stay out of this process.
  for (const group of [undefined, 'define', 'start', 'list', 'dominfo']) {
    const args = group ? ['--warm-group', group] : ['--warm'];
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      encoding: 'utf8',
      env: { ...process.env, SVIRT_DEBUG: '' },
    });
    if (r.status !== 0) {
      process.stderr.write(`scripts/bundle.mjs: making the code cache (${args.join(' ')}) failed (status ${r.status}):\n${r.stderr}`);
      process.exit(1);
    }
  }
  const size = (f) => `${(readFileSync(f).length / 1024).toFixed(0)} kB`;
  for (const f of [BUNDLE, READ_BUNDLE, CORE_BUNDLE, HOOK_BUNDLE]) console.log(`bundle: ${f} (${size(f)}), code cache ${size(`${f}.cache`)}`);
  console.log(`bundle: code caches of ${CORE_BUNDLE} for define ${size(`${CORE_BUNDLE}.define.cache`)}, start ${size(`${CORE_BUNDLE}.start.cache`)}`);
  console.log(`bundle: code caches of ${READ_BUNDLE} for list ${size(`${READ_BUNDLE}.list.cache`)}, dominfo ${size(`${READ_BUNDLE}.dominfo.cache`)}`);
}
