/**
 * The local user racing svirt: a separate process, running as the user's uid, that swaps names
 * in the user's own directory as fast as it can while svirt works, bounded in time and count.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { asUid, type LocalWorld } from './local-world.js';

export interface RaceOptions {
  /**
   * flip: names[0] alternates between a hard link of `real` (the user's image) and a link to
   * `target`, each put in place by an atomic rename. links: each name is unlinked and made a
   * link to `target`, over and over (whatever svirt created there is removed first).
   */
  readonly mode: 'flip' | 'links';
  readonly names: readonly string[];
  readonly target: string;
  readonly real?: string;
  readonly maxMs: number;
  readonly maxSwaps?: number;
}

export interface Racer {
  running(): boolean;
  /** Swaps done, as the racer last said (every 100 ms, and when it ends). */
  swaps(): number;
  /** links mode: how many of svirt's own files the racer replaced with a link. */
  hits(): number;
  /** Kills it by pid if still running and waits for it. */
  stop(): Promise<void>;
}

/** CommonJS for `node -e`: no file to read as the user, only the loop. */
const SCRIPT = `
const fs = require('node:fs');
const { mode, names, target, real, maxMs, maxSwaps } = JSON.parse(process.argv[1]);
const end = Date.now() + maxMs;
let swaps = 0;
let hits = 0;
let pass = 0;
let said = Date.now();
const tryDo = (f) => { try { f(); return true; } catch { return false; } };
process.stdout.write('ready\\n');
while (Date.now() < end && swaps < maxSwaps) {
  if (Date.now() - said > 100) { said = Date.now(); process.stdout.write('swaps ' + swaps + ' hits ' + hits + '\\n'); }
  if (mode === 'flip') {
    const name = names[0];
    if (tryDo(() => fs.linkSync(real, name + '.r')) && tryDo(() => fs.renameSync(name + '.r', name))) swaps++;
    if (tryDo(() => fs.symlinkSync(target, name + '.l')) && tryDo(() => fs.renameSync(name + '.l', name))) swaps++;
    tryDo(() => fs.unlinkSync(name + '.r'));
    tryDo(() => fs.unlinkSync(name + '.l'));
  } else {
    pass++;
    for (const name of names) {
      let st;
      try { st = fs.lstatSync(name); } catch { st = undefined; }
      if (st && st.isFile()) {
        // svirt's copy: replaced by a link while svirt still writes it.
        if (tryDo(() => fs.unlinkSync(name)) && tryDo(() => fs.symlinkSync(target, name))) { swaps++; hits++; }
      } else if (st) {
        tryDo(() => fs.unlinkSync(name)); // our link: gone again, so svirt may create its file
      } else if (pass % 8 === 0 && tryDo(() => fs.symlinkSync(target, name))) {
        swaps++; // now and then a link waits for svirt at the name
      }
    }
  }
}
process.stdout.write('swaps ' + swaps + ' hits ' + hits + '\\n');
`;

/** Starts the racer as the world's user and resolves once its loop runs. */
export function startRacer(w: LocalWorld, o: RaceOptions): Promise<Racer> {
  const spec = JSON.stringify({ ...o, maxSwaps: o.maxSwaps ?? 1_000_000 });
  const [cmd, args] = asUid(w.user, [process.execPath, '-e', SCRIPT, spec]);
  const child: ChildProcess = spawn(cmd, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: '/',
  });
  let out = '';
  let err = '';
  let exited = false;
  const done = new Promise<void>((resolve) =>
    child.once('close', () => {
      exited = true;
      resolve();
    }),
  );
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  // A racer that never got going is stopped after its own time bound plus a margin.
  const guard = setTimeout(() => child.kill('SIGKILL'), o.maxMs + 10_000);
  const racer: Racer = {
    running: () => !exited,
    swaps: () => Number([...out.matchAll(/swaps (\d+)/g)].pop()?.[1] ?? 0),
    hits: () => Number([...out.matchAll(/hits (\d+)/g)].pop()?.[1] ?? 0),
    stop: async () => {
      if (!exited) child.kill('SIGKILL');
      await done;
      clearTimeout(guard);
    },
  };
  return new Promise((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve(racer);
    });
    void done.then(() => {
      if (!out.includes('ready')) {
        clearTimeout(guard);
        reject(new Error(`the racer (uid ${w.user.uid}) did not start: ${err.trim()}`));
      }
    });
  });
}
