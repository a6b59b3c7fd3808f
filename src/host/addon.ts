/** Where loaded addons are kept for the whole process, by path: the CLI's read, core and full
 * bundles (src/cli/subset-main.ts) are copies of the modules that load them, and one process
 * may run two of them. */
const LOADED = Symbol.for('svirt.addons');

/**
 * A native addon (.node) at an absolute path, loaded once per process with process.dlopen:
 * what require() does for it, without Node's module resolution, which reads package.json files
 * on the way (~2 ms and ~250 pages of memory at a CLI start, issue 17). Throws as dlopen does.
 */
export function loadAddon(path: string): unknown {
  const host = globalThis as { [LOADED]?: Map<string, unknown> };
  const loaded = (host[LOADED] ??= new Map());
  if (loaded.has(path)) return loaded.get(path);
  const mod = { exports: {} };
  process.dlopen(mod, path);
  loaded.set(path, mod.exports);
  return mod.exports;
}
