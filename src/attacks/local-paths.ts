/**
 * A local user's path attacks (issue 12, items 1, 2 and 4): the user owns an image, its
 * directory or a log path, and swaps them for links to root's files, before start, while the
 * guest runs, or in a loop while svirt starts it.
 */
import { mkdirSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import { startRacer } from './local-race.js';
import { changedFrom, holders, snapshot, type FileSnapshot } from './local-files.js';
import { broken, firstError, guestXml, held, type LocalCell, type LocalWorld } from './local-world.js';

/** Every victim untouched on disk and held by no QEMU of this world, or what happened to the first that is not. */
export function victimsIntact(w: LocalWorld, victims: readonly { path: string; snap: FileSnapshot }[]): string | undefined {
  const pids = w.qemuPids();
  for (const v of victims) {
    const change = changedFrom(v.snap, v.path);
    if (change) return `${v.path}: ${change}`;
    const by = holders(pids, v.snap);
    if (by.length > 0) return `${v.path} is open in QEMU (pid ${by.join(', ')})`;
  }
  return undefined;
}

/** A directory in the user's home, owned by the user. */
function userDir(w: LocalWorld, name: string): string {
  const dir = join(w.home, name);
  mkdirSync(dir, { mode: 0o755 });
  chownSync(dir, w.user.uid, w.user.gid);
  return dir;
}

/** Item 1: the image's directory becomes a link to root's directory of same-named files while the guest runs. */
export async function dirSwapAtDestroy(w: LocalWorld): Promise<LocalCell> {
  const images = userDir(w, 'images');
  const disk = w.userImage('images/disk.img');
  const log = join(images, 'console.log');
  await w.userOk(['touch', log]);
  const victims = ['disk.img', 'console.log'].map((n) => {
    const path = w.rootFile(n);
    return { path, snap: snapshot(path) };
  });
  await w.define('g', guestXml('g', disk, { serialLog: log }));
  await w.ok(['start', 'g', '--paused']);
  await w.userOk(['mv', images, join(w.home, 'moved')]);
  await w.userOk(['ln', '-s', w.rootDir, images]);
  const r = await w.svirt(['destroy', 'g']);
  const bad = victimsIntact(w, victims);
  if (bad) return broken(`after destroy, ${bad}`);
  if (r.code !== 0) return held(`destroy failed (${firstError(r)}); root's files untouched`);
  const said = /no longer the file svirt labelled/.test(r.stderr) ? 'destroy reported the swap; ' : '';
  return held(`${said}root's disk.img and console.log keep owner, mode, content, xattrs`);
}

/** Item 4: between define and start, the user's image becomes a link (they own) to a root file. */
export async function linkSwapDisk(w: LocalWorld): Promise<LocalCell> {
  const disk = w.userImage('disk.img');
  const shadow = w.rootFile('shadow', 'root:$y$secret:19000:0:99999:7:::\n', 0o640);
  const victims = [{ path: shadow, snap: snapshot(shadow) }];
  await w.define('g', guestXml('g', disk));
  await w.userOk(['ln', '-sfn', shadow, disk]);
  const r = await w.svirt(['start', 'g', '--paused']);
  const bad = victimsIntact(w, victims);
  if (bad) return broken(`start ${r.code === 0 ? 'succeeded' : 'failed'}; ${bad}`);
  return held(r.code !== 0 ? `start refused: ${firstError(r)}` : 'started without touching the link target');
}

/** Item 4 for a `<serial type='file'>` log: a link to an existing root file, and one to a root path yet to exist. */
export async function linkSwapSerial(w: LocalWorld): Promise<LocalCell> {
  const existing = w.rootFile('log');
  const victims = [{ path: existing, snap: snapshot(existing) }];
  const dangling = join(w.rootDir, 'made-by-svirt');
  const notes: string[] = [];
  for (const [name, target] of [
    ['g1', existing],
    ['g2', dangling],
  ] as const) {
    const disk = w.userImage(`${name}.img`);
    const log = join(w.home, `${name}.log`);
    await w.define(name, guestXml(name, disk, { serialLog: log }));
    await w.userOk(['ln', '-sfn', target, log]);
    const r = await w.svirt(['start', name, '--paused']);
    const bad = victimsIntact(w, victims);
    if (bad) return broken(`${name}: start ${r.code === 0 ? 'succeeded' : 'failed'}; ${bad}`);
    if (pathExists(dangling)) return broken(`${name}: svirt created ${dangling} through the user's link`);
    notes.push(r.code !== 0 ? firstError(r) : 'started, target untouched');
  }
  return held(`start refused: ${notes[0] ?? ''}${notes[1] === notes[0] ? '' : ` / ${notes[1] ?? ''}`}`);
}

function pathExists(path: string): boolean {
  try {
    snapshot(path);
    return true;
  } catch {
    return false;
  }
}

/** Items 2 and 4 raced: the user flips the image between itself and a link to root's file while svirt starts it. */
export async function linkRaceAtStart(w: LocalWorld): Promise<LocalCell> {
  const disk = w.userImage('disk.img');
  const real = join(w.home, 'real.img');
  await w.userOk(['ln', disk, real]);
  const shadow = w.rootFile('shadow', 'root:$y$secret:19000:0:99999:7:::\n', 0o640);
  const victims = [{ path: shadow, snap: snapshot(shadow) }];
  await w.define('g', guestXml('g', disk));
  const racer = await startRacer(w, { mode: 'flip', names: [disk], target: shadow, real, maxMs: 4000 });
  let started = 0;
  let refused = 0;
  let attempts = 0;
  try {
    while (racer.running() && attempts < 12) {
      attempts++;
      const r = await w.svirt(['start', 'g', '--paused']);
      const bad = victimsIntact(w, victims);
      if (bad) return broken(`start #${attempts} ${r.code === 0 ? 'succeeded' : 'failed'} while racing; ${bad}`);
      if (r.code === 0) {
        started++;
        await w.ok(['destroy', 'g']);
        const after = victimsIntact(w, victims);
        if (after) return broken(`after destroy #${attempts}: ${after}`);
      } else refused++;
    }
  } finally {
    await racer.stop();
  }
  return held(
    `${attempts} starts against ${racer.swaps()} swaps: ${started} got the user's image, ${refused} refused; root's file untouched`,
  );
}
