/**
 * Issue 12, item 3: `clone` writes its copy into the directory of the source image, which the
 * user owns. The user puts a link to a root file at the copy's name beforehand, or keeps
 * replacing that name with such a link while the copy is written.
 */
import { join } from 'node:path';
import { victimsIntact } from './local-paths.js';
import { startRacer } from './local-race.js';
import { snapshot } from './local-files.js';
import { broken, firstError, guestXml, held, type LocalCell, type LocalWorld } from './local-world.js';

/** The copy's name svirt chooses: NEWNAME-TARGETDEV.EXT beside the source. */
function copyName(w: LocalWorld, newName: string): string {
  return join(w.home, `${newName}-vda.img`);
}

/** A root file the size of a small config: a truncate or chmod through a link would show. */
function victim(w: LocalWorld): { path: string; snap: ReturnType<typeof snapshot> } {
  const path = w.rootFile('victim', 'root config: keep me 0600 and this size\n');
  return { path, snap: snapshot(path) };
}

export async function cloneTargetLink(w: LocalWorld): Promise<LocalCell> {
  const v = victim(w);
  await w.define('src', guestXml('src', w.userImage('src.img', 8, 1 << 20)));
  await w.userOk(['ln', '-s', v.path, copyName(w, 'copy')]);
  const r = await w.svirt(['clone', 'src', 'copy']);
  const bad = victimsIntact(w, [v]);
  if (bad) return broken(`clone ${r.code === 0 ? 'succeeded' : 'failed'}; ${bad}`);
  return held(r.code !== 0 ? `clone refused: ${firstError(r)}` : "clone wrote its own file; root's file untouched");
}

export async function cloneTargetRace(w: LocalWorld): Promise<LocalCell> {
  const v = victim(w);
  // 16 MiB of data: each copy takes long enough for many swaps to land while it is written.
  await w.define('src', guestXml('src', w.userImage('src.img', 32, 16 << 20)));
  const names = Array.from({ length: 8 }, (_, i) => `copy${i}`);
  const racer = await startRacer(w, { mode: 'links', names: names.map((n) => copyName(w, n)), target: v.path, maxMs: 4000 });
  let made = 0;
  let refused = 0;
  let attempts = 0;
  try {
    for (const name of names) {
      if (!racer.running()) break;
      attempts++;
      const r = await w.svirt(['clone', 'src', name]);
      const bad = victimsIntact(w, [v]);
      if (bad) return broken(`clone #${attempts} ${r.code === 0 ? 'succeeded' : 'failed'} while racing; ${bad}`);
      if (r.code === 0) made++;
      else refused++;
    }
  } finally {
    await racer.stop();
  }
  const bad = victimsIntact(w, [v]);
  if (bad) return broken(`after the race: ${bad}`);
  if (attempts === 0) throw new Error('the racer ended before any clone ran');
  return held(
    `${attempts} clones against ${racer.swaps()} swaps (${racer.hits()} of svirt's copies replaced by a link): ` +
      `${made} made, ${refused} refused; root's file untouched`,
  );
}
