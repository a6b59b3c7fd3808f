/**
 * Save files as untrusted input (issue 12, item 7). Root saves a guest into the user's
 * directory; the user puts a crafted file in its place (a rename over root's file, which the
 * directory's owner may do), and root restores it.
 */
import { chmodSync, closeSync, constants, fchownSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { HEADER_SIZE, writeHeader, type SaveHeader } from '../lifecycle/save-file.js';
import { makeRawImage } from './guests.js';
import { victimsIntact } from './local-paths.js';
import { changedFrom, snapshot, uidOf } from './local-files.js';
import { broken, firstError, guestXml, held, type LocalCell, type LocalWorld } from './local-world.js';

/**
 * The user's version of root's save file `file`: the header's domain XML edited, the saved
 * state kept (the user could make their own with QEMU; copying root's is quicker), owned by
 * the user and renamed over the original by the user.
 */
async function craft(w: LocalWorld, file: string, edit: (xml: string) => string): Promise<void> {
  // The user reads the header as JSON; svirt's seal over it they cannot make (no key), so
  // they seal with a key of their own, the best an attacker can do.
  const block = readFileSync(file).subarray(0, HEADER_SIZE).toString('utf8');
  const m = /^SvirtSave1\n(\d+)\n/.exec(block);
  if (!m) throw new Error('not an svirt save file');
  const { seal: _seal, ...header } = JSON.parse(block.slice(m[0].length, m[0].length + Number(m[1]))) as SaveHeader & {
    seal?: string;
  };
  void _seal;
  const xml = edit(header.xml);
  if (xml === header.xml) throw new Error('the header has nothing to tamper with');
  const made = join(w.home, '.crafted.save');
  const fd = openSync(made, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    writeHeader(fd, { ...header, xml }, randomBytes(32));
    writeSync(fd, readFileSync(file).subarray(HEADER_SIZE));
    fchownSync(fd, w.user.uid, w.user.gid);
  } finally {
    closeSync(fd);
  }
  await w.userOk(['mv', '-f', made, file]);
}

/** A label per model that would hand the guest to the user, or out of confinement. */
function staticLabel(w: LocalWorld, model: string): string {
  switch (model) {
    case 'dac':
      return `<seclabel type='static' model='dac' relabel='yes'><label>+${w.user.uid}:+${w.user.gid}</label></seclabel>`;
    case 'selinux':
      return "<seclabel type='static' model='selinux' relabel='yes'><label>system_u:system_r:unconfined_t:s0</label></seclabel>";
    case 'apparmor':
      return "<seclabel type='static' model='apparmor' relabel='yes'><label>unconfined</label></seclabel>";
    default:
      return `<seclabel type='none' model='${model}'/>`;
  }
}

const DYNAMIC = /<seclabel type=(['"])dynamic\1 model=(['"])(\w+)\2[^>]*?(\/>|>[^]*?<\/seclabel>)/g;

/**
 * Root's guest (its image root's, 0600) saved into the user's directory; the user's file asks
 * for labels that hand it to them: dac +UID:+GID of the user with relabel, selinux unconfined_t,
 * apparmor unconfined, landlock none.
 */
export async function saveStaticLabel(w: LocalWorld): Promise<LocalCell> {
  const img = makeRawImage(join(w.rootDir, 't.img'), 4);
  chmodSync(img, 0o600);
  const file = join(w.home, 't.save');
  const def = join(w.dir, 't.xml');
  // Transient: once saved, svirt knows no definition of it, so the header is all there is.
  writeFileSync(def, guestXml('t', img), { mode: 0o600 });
  await w.ok(['create', def, '--paused']);
  await w.ok(['save', 't', file]);
  const snap = snapshot(img);
  const models: string[] = [];
  await craft(w, file, (xml) =>
    xml.replace(DYNAMIC, (_m, _q1, _q2, model: string) => {
      models.push(model);
      return staticLabel(w, model);
    }),
  );
  const r = await w.svirt(['restore', file]);
  if (r.code !== 0) {
    const change = changedFrom(snap, img);
    if (change) return broken(`restore failed, yet root's image changed: ${change}`);
    return held(`restore refused: ${firstError(r)}`);
  }
  const rec = w.record('t');
  const uid = rec?.pid ? uidOf(rec.pid) : undefined;
  if (uid === w.user.uid) return broken(`restored: QEMU runs as the user's uid ${uid}`);
  if (snapshot(img).uid === w.user.uid) return broken(`restored: root's image now belongs to the user's uid ${w.user.uid}`);
  if (rec && /type='(static|none)'/.test(rec.liveXml)) return broken(`restored with the header's labels (${models.join(', ')})`);
  return held("restored with fresh dynamic labels; the header's were ignored");
}

/** The header of a guest svirt knows: same uuid and labels, but its disk now names a root file. */
export async function saveDiskRedirect(w: LocalWorld): Promise<LocalCell> {
  const img = w.userImage('g.img');
  const file = join(w.home, 'g.save');
  const shadow = w.rootFile('shadow', 'root:$y$secret:19000:0:99999:7:::\n', 0o640);
  const victims = [{ path: shadow, snap: snapshot(shadow) }];
  await w.define('g', guestXml('g', img));
  await w.ok(['start', 'g', '--paused']);
  await w.ok(['save', 'g', file]);
  await craft(w, file, (xml) => xml.split(`'${img}'`).join(`'${shadow}'`));
  const r = await w.svirt(['restore', file]);
  const bad = victimsIntact(w, victims);
  if (!bad) return held(r.code !== 0 ? `restore refused: ${firstError(r)}` : "restored without touching root's file");
  if (r.code !== 0) return broken(`restore failed, yet ${bad}`);
  const uid = w.record('g')?.pid;
  const qemuUid = uid ? uidOf(uid) : undefined;
  await w.svirt(['destroy', 'g']);
  const after = victimsIntact(w, victims);
  return broken(
    `restore succeeded: ${bad}${qemuUid === undefined ? '' : ` (QEMU runs as uid ${qemuUid})`}; ` +
      `after destroy: ${after ?? 'given back'}`,
  );
}
