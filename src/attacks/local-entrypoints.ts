/**
 * Hostile entrypoints (issue 15, `vm:entrypoint`): root's definition names a host secret or a
 * special file as a guest's disk or serial log, directly or through a link. Held means svirt
 * refused (at define or start) and the file is untouched: owner, mode, content, xattrs, and
 * no QEMU holds it. Checked under every stack, `none` included: the check is svirt's own.
 */
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { holders, snapshot } from './local-files.js';
import { victimsIntact } from './local-paths.js';
import { broken, firstError, guestXml, held, type LocalCell, type LocalWorld } from './local-world.js';
import { makeRawImage } from './guests.js';

/** Defines and starts `xml`; held when either refuses and every victim is intact. */
async function refusedIntact(w: LocalWorld, xml: string, victims: readonly string[]): Promise<LocalCell> {
  const snaps = victims.map((path) => ({ path, snap: snapshot(path) }));
  const d = await w.svirt(['define', writeXml(w, xml)]);
  const r = d.code === 0 ? await w.svirt(['start', 'g', '--paused']) : d;
  const bad = victimsIntact(w, snaps);
  if (bad) return broken(bad);
  if (r.code === 0) return broken('the guest started');
  return held(`${d.code === 0 ? 'start' : 'define'} refused: ${firstError(r)}`);
}

function writeXml(w: LocalWorld, xml: string): string {
  const file = join(w.dir, 'g.xml');
  writeFileSync(file, xml, { mode: 0o600 });
  return file;
}

export async function entryShadow(w: LocalWorld): Promise<LocalCell> {
  return refusedIntact(w, guestXml('g', '/etc/shadow'), ['/etc/shadow']);
}

/** Root's own link (followed by the symlink rule: root made it) to /etc/shadow. */
export async function entryShadowLink(w: LocalWorld): Promise<LocalCell> {
  const link = join(w.rootDir, 'disk.img');
  symlinkSync('/etc/shadow', link);
  return refusedIntact(w, guestXml('g', link), ['/etc/shadow']);
}

/**
 * A hard link: to /etc/shadow itself when this dir is on its filesystem, else to a root
 * file elsewhere (then the multiply-linked rule refuses it, as it would /etc/shadow's).
 */
export async function entryHardLink(w: LocalWorld): Promise<LocalCell> {
  const link = join(w.rootDir, 'disk.img');
  let victim = '/etc/shadow';
  if (statSync(victim).dev !== statSync(w.rootDir).dev) {
    const other = join(w.dir, 'secret');
    mkdirSync(other, { mode: 0o700 });
    victim = join(other, 'shadow');
    writeFileSync(victim, 'root:$y$secret:19000:0:99999:7:::\n', { mode: 0o600 });
  }
  linkSync(victim, link);
  try {
    const cell = await refusedIntact(w, guestXml('g', link), [victim]);
    return victim === '/etc/shadow'
      ? cell
      : { ...cell, detail: `(a root file: /etc/shadow is on another filesystem) ${cell.detail}` };
  } finally {
    rmSync(link, { force: true }); // /etc/shadow's link count back to 1 before anything else runs
  }
}

/** Root's serial log is a link (the user's) to a root file svirt would truncate. */
export async function entrySerialLink(w: LocalWorld): Promise<LocalCell> {
  const victim = w.rootFile('important.log');
  const log = join(w.home, 'serial.log');
  await w.userOk(['ln', '-s', victim, log]);
  const disk = makeRawImage(join(w.rootDir, 'g.img'), 4);
  return refusedIntact(w, guestXml('g', disk, { serialLog: log }), [victim]);
}

export async function entryProcMem(w: LocalWorld): Promise<LocalCell> {
  return refusedIntact(w, guestXml('g', '/proc/self/mem'), []);
}

/** A device node root made in a plain directory: /dev/mem's numbers (1:1). */
export async function entryDeviceNode(w: LocalWorld): Promise<LocalCell> {
  const node = join(w.rootDir, 'mem');
  execFileSync('mknod', ['-m', '0600', node, 'c', '1', '1']);
  return refusedIntact(w, guestXml('g', node), [node]);
}

export async function entryFifo(w: LocalWorld): Promise<LocalCell> {
  const fifo = join(w.rootDir, 'disk.fifo');
  execFileSync('mkfifo', ['-m', '0600', fifo]);
  return refusedIntact(w, guestXml('g', fifo), [fifo]);
}

export async function entryDirectory(w: LocalWorld): Promise<LocalCell> {
  const dir = join(w.rootDir, 'disk.d');
  mkdirSync(dir, { mode: 0o700 });
  return refusedIntact(w, guestXml('g', dir), [dir]);
}

/** svirt's own store as a guest's disk: the guest would rewrite every label record. */
export async function entryStore(w: LocalWorld): Promise<LocalCell> {
  await w.ok(['list']); // the store exists
  const db = join(w.stateDir, 'svirt.db');
  const before = snapshot(db);
  // svirt writes its store as it works: judged on owner, mode, xattrs, and who holds it.
  const cell = await refusedIntact(w, guestXml('g', db), []);
  const after = snapshot(db);
  const changed = (['uid', 'gid', 'mode', 'dev', 'ino'] as const).find((k) => before[k] !== after[k]);
  if (changed !== undefined) return broken(`the store's ${changed} changed: ${before[changed]} -> ${after[changed]}`);
  if (JSON.stringify(before.xattrs) !== JSON.stringify(after.xattrs)) return broken("the store's xattrs changed");
  const by = holders(w.qemuPids(), after);
  return by.length > 0 ? broken(`the store is open in QEMU (pid ${by.join(', ')})`) : cell;
}
