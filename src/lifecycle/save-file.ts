/**
 * The save file: its format (a 64 KiB header, then QEMU's migration stream) and how svirt
 * makes, moves and removes one — always inside an opened directory, never through a link.
 */
import { closeSync, constants, fstatSync, linkSync, lstatSync, openSync, readSync, renameSync, writeSync } from 'node:fs';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { primaryVideoIndex } from '../domain/display-def.js';
import type { DomainDef } from '../domain/domain-def.js';
import { parseDomainXml } from '../domain/index.js';
import { SvirtError, errnoOf } from '../errors.js';
import { openHandle, unlinkBeneath, type FileHandle } from '../host/file-handle.js';
import { removeFile } from '../host/files.js';

/** A save file: this magic, a JSON header, zero padding to HEADER_SIZE, then QEMU's migration stream. */
const MAGIC = 'SvirtSave1\n';
export const HEADER_SIZE = 65536;

/**
 * 2: the definition in the header has every device placed by svirt (controllers and PCI
 * addresses written in), so restore rebuilds QEMU's device tree exactly. Version 1 files made
 * before svirt placed devices have none, and QEMU could not load their state into the tree
 * svirt builds now; a version 1 file whose definition has its PCI root controller was made by
 * a placing svirt and is still read.
 * 3: videos, virtio inputs and shared folders are placed too (before, QEMU put them in free
 * slots itself). An older file is read unless its definition has one of those without an
 * address (the primary video alone went where svirt now puts it: QEMU's own first pick).
 */
export const SAVE_VERSION = 3;

export interface SaveHeader {
  readonly version: 1 | 2 | 3;
  readonly name: string;
  readonly uuid: string;
  /** The live definition at save time (hotplugged devices included); labels are made anew on restore. */
  readonly xml: string;
  readonly persistent: boolean;
  readonly paused: boolean;
}

/** A new file (O_EXCL, 0600) beside `target`, made inside the opened directory, and its handle. */
export function createBeside(target: string): { path: string; fd: number; handle: FileHandle; close(): void; discard(): void } {
  const dir = openHandle(dirname(target), 'save into');
  try {
    if (dir.kind !== 'dir')
      throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `cannot save to "${target}": its parent is not a directory`);
    let there;
    try {
      there = lstatSync(`${dir.procPath}/${basename(target)}`, { throwIfNoEntry: false }); // undefined: a new file, the usual case
    } catch {
      there = undefined; // not ours to look at: the create and the rename below report it
    }
    if (there !== undefined && !there.isFile()) {
      throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `cannot save to "${target}": it exists and is not a regular file`);
    }
    const name = `.${basename(target)}.svirt-${randomBytes(4).toString('hex')}`;
    const path = join(dirname(target), name);
    let fd: number;
    try {
      fd = openSync(
        `${dir.procPath}/${name}`,
        constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o600,
      );
    } catch (err) {
      throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `cannot create save file "${target}": ${errnoOf(err) ?? String(err)}`, {
        cause: err,
      });
    }
    const handle = openHandle(path, 'save into');
    const st = fstatSync(fd);
    if (handle.stats.dev !== st.dev || handle.stats.ino !== st.ino) {
      handle.close();
      closeSync(fd);
      throw new SvirtError('SVIRT_ERR_FILE_CHANGED', `"${path}" changed while svirt created it`);
    }
    return {
      path,
      fd,
      handle,
      close: () => {
        handle.close();
        closeSync(fd);
      },
      discard: () => {
        handle.close();
        closeSync(fd);
        unlinkAt(path);
      },
    };
  } finally {
    dir.close();
  }
}

/** Unlinks a file svirt made, through its opened directory (never through a link). */
export function unlinkAt(path: string): void {
  unlinkBeneath(path, 'remove');
}

/** Moves the finished state over the target name, inside the same opened directory. */
export function renameOver(from: string, to: string): void {
  const dir = openHandle(dirname(from), 'save into');
  try {
    renameSync(`${dir.procPath}/${basename(from)}`, `${dir.procPath}/${basename(to)}`);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return; // moved already, by a save a crash interrupted after the move
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `cannot move the saved state to "${to}": ${errnoOf(err) ?? String(err)}`,
      {
        cause: err,
      },
    );
  } finally {
    dir.close();
  }
}

export function writeHeader(fd: number, h: SaveHeader, key: Buffer): void {
  const body = JSON.stringify(h);
  const json = Buffer.from(JSON.stringify({ ...h, seal: seal(key, body) }));
  const head = Buffer.concat([Buffer.from(MAGIC), Buffer.from(`${json.length}\n`), json]);
  if (head.length > HEADER_SIZE)
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `the definition of '${h.name}' is too large for a save header`);
  const block = Buffer.alloc(HEADER_SIZE);
  head.copy(block);
  // No explicit position: the fd's offset moves past the header, which is where QEMU writes.
  writeSync(fd, block, 0, HEADER_SIZE, null);
}

/** Reads and checks a save file's header; the error names the file. */
export function readSaveHeader(fd: number, file: string, key: Buffer): SaveHeader {
  const block = Buffer.alloc(HEADER_SIZE);
  // No explicit position: the fd's offset ends after the header, where QEMU reads the stream.
  const n = readSync(fd, block, 0, HEADER_SIZE, null);
  const bad = (why: string): SvirtError =>
    new SvirtError('SVIRT_ERR_OPERATION_INVALID', `"${file}" is not an svirt save file: ${why}`);
  if (n < HEADER_SIZE || block.subarray(0, MAGIC.length).toString() !== MAGIC) throw bad('bad magic');
  const rest = block.subarray(MAGIC.length);
  const nl = rest.indexOf(10);
  const len = Number(rest.subarray(0, nl).toString());
  if (nl < 1 || !Number.isInteger(len) || len <= 0 || nl + 1 + len > rest.length) throw bad('bad header length');
  let h: SaveHeader;
  try {
    h = JSON.parse(rest.subarray(nl + 1, nl + 1 + len).toString()) as SaveHeader;
  } catch {
    throw bad('header is not JSON');
  }
  if (![1, 2, SAVE_VERSION].includes(h.version) || typeof h.xml !== 'string' || typeof h.name !== 'string') {
    throw bad('unknown header version');
  }
  // The header says which files become the guest's: only one this host's svirt wrote counts.
  const { seal: got, ...fields } = h as SaveHeader & { seal?: unknown };
  const want = seal(key, JSON.stringify(fields));
  if (typeof got !== 'string' || got.length !== want.length || !timingSafeEqual(Buffer.from(got), Buffer.from(want))) {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `cannot restore from "${file}": its header is not sealed by this host's svirt (a save file is untrusted input: ` +
        "it was changed, or written by another host; share the state dir's save.key to restore elsewhere)",
    );
  }
  h = fields as SaveHeader;
  if (h.version === 1 && !/<controller type='pci'[^>]* model='pci(e)?-root'/.test(h.xml)) {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `cannot restore from "${file}": it was saved by an svirt that did not place devices yet, and QEMU cannot load its state ` +
        `into the device tree this svirt builds (the file is kept; start the guest afresh)`,
    );
  }
  const byQemu = h.version < 3 ? placedByQemu(h.xml) : [];
  if (byQemu.length > 0) {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `cannot restore from "${file}": it was saved by an svirt that let QEMU place ${byQemu.join(', ')} itself, and QEMU ` +
        `cannot load its state into the device tree this svirt builds (the file is kept; start the guest afresh)`,
    );
  }
  if (fstatSync(fd).size <= HEADER_SIZE) throw bad('no saved state after the header');
  return h;
}

/** The devices of an older header's definition that QEMU placed itself (svirt places them since version 3). */
function placedByQemu(xml: string): string[] {
  let def: DomainDef;
  try {
    def = parseDomainXml(xml);
  } catch {
    return []; // restore parses the definition itself and reports what is wrong with it
  }
  const videos = def.videos ?? [];
  const primary = primaryVideoIndex(videos);
  return [
    ...videos.flatMap((v, i) => (i !== primary && v.model !== 'none' && !v.address ? [`video${i}`] : [])),
    ...(def.inputs ?? []).flatMap((n, i) => (n.bus === 'virtio' && !n.address ? [`input${i}`] : [])),
    ...(def.filesystems ?? []).flatMap((f, i) => (f.address ? [] : [`fs${i}`])),
  ];
}

/**
 * Writes a new key under a name of its own, then links it into place: link() fails with EEXIST
 * when another svirt was first, so two first saves agree on one key, and neither can read the
 * other's half-written (an exclusive create at the final name let the second read an empty file).
 */
function makeSaveKey(stateDir: string, path: string): void {
  const tmp = join(stateDir, `.save.key.${process.pid}.${randomBytes(4).toString('hex')}`);
  try {
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      writeSync(fd, randomBytes(32));
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, path);
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw err; // another svirt made it first: that one is the key
    }
  } catch (err) {
    throw new SvirtError('SVIRT_ERR_HOST', `cannot create "${path}": ${errnoOf(err) ?? String(err)}`, { cause: err });
  } finally {
    removeFile(tmp);
  }
}

function seal(key: Buffer, body: string): string {
  return createHmac('sha256', key).update(body).digest('hex');
}

/**
 * The key that seals save headers: 32 random bytes in the state dir, made once (0600) and
 * read without following a link; anything else at that name is an error.
 */
export function saveKey(stateDir: string): Buffer {
  const path = join(stateDir, 'save.key');
  // Made once (no EEXIST thrown on every later save and restore), whole: see makeSaveKey.
  if (lstatSync(path, { throwIfNoEntry: false }) === undefined) makeSaveKey(stateDir, path);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    throw new SvirtError('SVIRT_ERR_HOST', `cannot read "${path}": ${errnoOf(err) ?? String(err)}`, { cause: err });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size !== 32 || (st.mode & 0o077) !== 0 || st.uid !== process.getuid?.()) {
      throw new SvirtError('SVIRT_ERR_HOST', `"${path}" is not svirt's save key (a 32-byte file of its own, mode 0600)`);
    }
    const key = Buffer.alloc(32);
    if (readSync(fd, key, 0, 32, 0) !== 32) throw new SvirtError('SVIRT_ERR_HOST', `"${path}" is short`);
    return key;
  } finally {
    closeSync(fd);
  }
}
