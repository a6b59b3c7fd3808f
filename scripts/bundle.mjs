// Builds the CLI's start-up form (issue 17), the last step of `npm run build:ts`:
//   dist/svirt.cjs         dist/src/cli/main.js and everything it imports (saxes and
//                          better-sqlite3's JavaScript too) in one CommonJS file;
//   dist/svirt.cjs.cache   V8's compiled code for it, made after running a few verbs in a
//                          scratch state dir, so those verbs' functions are in it (start and
//                          destroy of a paused guest too, where QEMU is installed);
//   dist/svirt-hook.cjs    the same for src/cli/hook.ts, the monitor's lean reconcile entry
//   (and .cache)           (the store and the restore path only).
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
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
const { BUNDLE, HOOK_BUNDLE, load } = require('../bin/svirt.js');

/** Built-ins a bare `node` start has loaded already: importing them costs nothing, so they stay plain. */
const LOADED_AT_START = new Set(['node:fs', 'node:path', 'node:url', 'node:module', 'node:vm']);

/** A lazy shim of a built-in whose exports are a plain object (not a function: a default import
 * of `events` or `assert` must be the function itself, so those stay plain requires). */
function lazyShim(name) {
  const mod = require(name);
  if (typeof mod !== 'object' || mod === null) return undefined;
  const keys = Object.keys(mod).filter((k) => /^[A-Za-z_$][\w$]*$/.test(k));
  return [
    `let m;`,
    `const l = () => (m ??= require(${JSON.stringify(name)}));`,
    `module.exports = {`,
    ...keys.map((k) => `  get ${k}() { return l().${k}; },`),
    `};`,
  ].join('\n');
}

async function bundle(entry, outfile) {
  const esbuild = await import('esbuild');
  const builtins = new Set(builtinModules.flatMap((b) => [b, `node:${b}`]));
  await esbuild.build({
    entryPoints: [join(root, entry)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    minifyWhitespace: true, // half the bytes to read and hash; names stay (errors name functions)
    sourcemap: false,
    logLevel: 'warning',
    // The bundle's own URL where a module asked for its own (createRequire, the package root).
    define: { 'import.meta.url': '__svirtModuleUrl' },
    banner: { js: 'const __svirtModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
    external: ['*.node'],
    plugins: [
      {
        name: 'svirt',
        setup(b) {
          // createRequire(import.meta.url)('saxes') keeps the ES module build cheap (dist/src/);
          // here a plain require lets esbuild bundle the package.
          b.onLoad({ filter: /[\\/]dist[\\/]src[\\/].*\.js$/ }, (a) => ({
            contents: readFileSync(a.path, 'utf8').replace(
              /createRequire\(import\.meta\.url\)\('(saxes|better-sqlite3)'\)/g,
              "require('$1')",
            ),
            loader: 'js',
          }));
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
  const text = readFileSync(outfile, 'utf8');
  if (/\bimport\(/.test(text.replace(/"[^"\n]*"|'[^'\n]*'/g, ''))) {
    throw new Error(`${outfile} has a dynamic import() left: it would need an ES module loader`);
  }
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
 * Where QEMU is installed: starts and destroys a paused guest under the `none` stack (what
 * `start` and `destroy` run, compiled into the CLI's cache), then starts it again, kills its
 * QEMU and runs the hook's cleanup in-process (the hook's path, into its cache). Without QEMU
 * the starts fail, which only leaves that code out of the caches (compiled when first run).
 * Every process it starts is waited for: the guest's QEMU and its monitor.
 */
async function warmGuest(cli, hook, dir, base) {
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
  await cli.main([...base, 'define', xml]);
  try {
    if ((await cli.main([...base, 'start', 'warm-run', '--paused'])) !== 0) return;
    const first = record();
    for (const v of [['list'], ['dominfo', 'warm-run'], ['destroy', 'warm-run']]) await cli.main([...base, ...v]);
    await gone(first?.monitor, 5000);
    if ((await cli.main([...base, 'start', 'warm-run', '--paused'])) !== 0) return;
    const second = record();
    if (second?.pid) {
      process.kill(second.pid, 'SIGKILL');
      await gone(second.pid, 5000);
      await hook.main([state]);
    }
    await cli.main([...base, 'destroy', 'warm-run']); // in case the monitor's own hook was first
    await gone(second?.monitor, 5000);
  } finally {
    await cli.main([...base, 'undefine', 'warm-run']);
  }
}

function writeCache(file, script) {
  const tmp = `${file}.cache.tmp`;
  writeFileSync(tmp, script.createCachedData());
  renameSync(tmp, `${file}.cache`);
}

/** In the child: runs verbs that touch nothing outside a scratch state dir, then writes the caches. */
async function warm() {
  const { exports, script } = load(BUNDLE, undefined);
  const hook = load(HOOK_BUNDLE, undefined);
  const dir = mkdtempSync(join(tmpdir(), 'svirt-bundle-'));
  try {
    chmodSync(dir, 0o711);
    const xml = join(dir, 'warm.xml');
    writeFileSync(xml, DEFINITION);
    const base = ['--state-dir', join(dir, 'state'), '--security-driver', 'none'];
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
    for (const v of verbs) await exports.main([...base, ...v]);
    for (const v of [['list'], ['--json', 'list']]) await exports.main(['--state-dir', join(dir, 'state'), ...v]);
    await hook.exports.main([join(dir, 'state')]);
    await warmGuest(exports, hook.exports, dir, base);
  } finally {
    rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  }
  writeCache(BUNDLE, script);
  writeCache(HOOK_BUNDLE, hook.script);
}

if (process.argv[2] === '--warm') {
  await warm();
} else {
  await bundle('dist/src/cli/main.js', BUNDLE);
  await bundle('dist/src/cli/hook.js', HOOK_BUNDLE);
  // A child, so the verbs' output and Node's state stay out of this process.
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--warm'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    env: { ...process.env, SVIRT_DEBUG: '' },
  });
  if (r.status !== 0) {
    process.stderr.write(`scripts/bundle.mjs: making the code cache failed (status ${r.status}):\n${r.stderr}`);
    process.exit(1);
  }
  const size = (f) => `${(readFileSync(f).length / 1024).toFixed(0)} kB`;
  for (const f of [BUNDLE, HOOK_BUNDLE]) console.log(`bundle: ${f} (${size(f)}), code cache ${size(`${f}.cache`)}`);
}
