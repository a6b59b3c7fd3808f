/**
 * The machine types a QEMU binary offers (`-machine help`), cached in the state dir by the
 * binary's device, inode and mtime: a define, a start and the capabilities read them, and a
 * probe runs QEMU for ~60 ms. `svirt serve` fills the cache off its event loop as it starts
 * (warmMachineCache); machinesOf probes on the spot when the cache lacks a binary.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { SvirtError } from '../errors.js';
import { readCapped } from './read-capped.js';

export interface MachineType {
  readonly name: string;
  /** The canonical machine this name is an alias of (`q35` → `pc-q35-7.2`). */
  readonly canonical?: string;
  readonly isDefault: boolean;
  readonly deprecated: boolean;
}

/** `-machine help` output → machine types. */
export function parseMachineHelp(text: string): MachineType[] {
  const out: MachineType[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+(.*)$/.exec(line);
    if (!m || m[1] === 'Supported') continue;
    const desc = m[2] ?? '';
    const alias = /\(alias of ([^)]+)\)/.exec(desc);
    out.push({
      name: m[1] as string,
      ...(alias ? { canonical: alias[1] as string } : {}),
      isDefault: desc.includes('(default)'),
      deprecated: desc.includes('(deprecated)'),
    });
  }
  return out;
}

interface CacheEntry {
  readonly dev: number;
  readonly ino: number;
  readonly mtimeMs: number;
  readonly machines: MachineType[];
}

const MACHINE_CACHE = 'qemu-machines.json';
const PROBE_ARGS = ['-machine', 'help'];
const PROBE_TIMEOUT_MS = 20_000;
/** `-machine help` prints a few kB; more is not a QEMU. */
const PROBE_MAX_OUTPUT = 1 << 20;

/** How `-machine help` runs: a fixed environment, from /, as nobody when svirt is root. */
function probeOptions() {
  const asRoot = process.getuid?.() === 0;
  return { env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' }, cwd: '/', ...(asRoot ? { uid: 65534, gid: 65534 } : {}) };
}

function readMachineCache(file: string | undefined): Record<string, CacheEntry> {
  const cache: Record<string, CacheEntry> = {};
  const text = file === undefined ? undefined : readCapped(file, 4 * 1024 * 1024);
  try {
    if (text !== undefined) Object.assign(cache, JSON.parse(text) as Record<string, CacheEntry>);
  } catch {
    // A damaged cache is rebuilt.
  }
  return cache;
}

function cacheHit(cache: Record<string, CacheEntry>, path: string, st: Stats): MachineType[] | undefined {
  const hit = cache[path];
  return hit && hit.dev === st.dev && hit.ino === st.ino && hit.mtimeMs === st.mtimeMs ? hit.machines : undefined;
}

/** Adds one binary's machine types to the cache file (re-read first: another process may have added its own). */
function storeMachines(cacheDir: string, path: string, st: Stats, machines: MachineType[]): void {
  const file = join(cacheDir, MACHINE_CACHE);
  const cache = readMachineCache(file);
  cache[path] = { dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs, machines };
  try {
    mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}`;
    writeFileSync(tmp, JSON.stringify(cache), { mode: 0o600, flag: 'wx' });
    renameSync(tmp, file);
  } catch {
    // The cache only saves time; a read-only state dir costs one -machine help per start.
  }
}

function notQemu(path: string, stderr: string): SvirtError {
  return new SvirtError(
    'SVIRT_ERR_XML_INVALID',
    `emulator "${path}" is not a QEMU binary: '-machine help' listed no machine types`,
    {
      details: { path, stderr: stderr.slice(-500) },
    },
  );
}

/** The machine types of a QEMU binary, from the cache in `cacheDir` when dev/ino/mtime still match. */
export function machinesOf(path: string, st: Stats, cacheDir: string | undefined): MachineType[] {
  const hit = cacheHit(readMachineCache(cacheDir === undefined ? undefined : join(cacheDir, MACHINE_CACHE)), path, st);
  if (hit) return hit;
  const r = spawnSync(path, PROBE_ARGS, {
    ...probeOptions(),
    encoding: 'utf8',
    timeout: PROBE_TIMEOUT_MS,
    maxBuffer: PROBE_MAX_OUTPUT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const machines = r.status === 0 ? parseMachineHelp(r.stdout) : [];
  if (machines.length === 0) throw notQemu(path, r.stderr ?? '');
  if (cacheDir !== undefined) storeMachines(cacheDir, path, st, machines);
  return machines;
}

/**
 * Fills the cache in `cacheDir` for each of `emulators` it lacks, running `-machine help`
 * off the event loop: `svirt serve` calls it at its start, so a define or a capabilities call
 * finds the cache and machinesOf never runs QEMU on the loop that serves every client (each
 * probe is ~60 ms here). Returns the binaries probed; a binary that fails is left to
 * machinesOf, which reports it.
 */
export async function warmMachineCache(cacheDir: string, emulators: readonly { readonly path: string }[]): Promise<string[]> {
  const probed: string[] = [];
  const cache = readMachineCache(join(cacheDir, MACHINE_CACHE));
  for (const e of emulators) {
    let st: Stats;
    try {
      st = statSync(e.path);
    } catch {
      continue; // gone since the listing
    }
    if (cacheHit(cache, e.path, st)) continue;
    const stdout = await probeAsync(e.path);
    const machines = stdout === undefined ? [] : parseMachineHelp(stdout);
    if (machines.length === 0) continue;
    storeMachines(cacheDir, e.path, st, machines);
    probed.push(e.path);
  }
  return probed;
}

/** `-machine help`'s output, or undefined when it failed, ran too long or printed too much. */
function probeAsync(path: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn(path, PROBE_ARGS, { ...probeOptions(), stdio: ['ignore', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    let bytes = 0;
    const timer = setTimeout(() => child.kill('SIGKILL'), PROBE_TIMEOUT_MS);
    child.stdout.on('data', (d: Buffer) => {
      bytes += d.length;
      if (bytes > PROBE_MAX_OUTPUT) child.kill('SIGKILL');
      else chunks.push(d);
    });
    child.on('error', () => {
      clearTimeout(timer);
      resolve(undefined);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(code === 0 && bytes <= PROBE_MAX_OUTPUT ? Buffer.concat(chunks).toString('utf8') : undefined);
    });
  });
}
