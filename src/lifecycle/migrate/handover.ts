/**
 * The handover of shared images between two hosts (docs/migration.md, "The handover order").
 * The source says, in the migration cookie, which files it hands over, which owner and
 * SELinux label each has under it, and what each was before the guest ever ran (its
 * remembered originals). The destination takes a file only while it is still exactly as the
 * source said (same file, same owner: the source still holds it), and gives it back the same
 * way if it must let go before the guest runs on its side.
 */
import { fgetxattr, fsetxattr } from '../../host/native.js';
import { withHandle, type FileHandle } from '../../host/file-handle.js';
import { SvirtError } from '../../errors.js';
import type { DriverName, GuestResource, LabelMemory } from '../../security/driver.js';
import { parseCopy, type CopyStorage } from './copy-storage.js';

/** The roles that change hands: a guest's private writable images. */
export function handedOver(r: GuestResource): boolean {
  return r.role === 'disk';
}

export interface ImageState {
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
  /** security.selinux, when the file has one. */
  readonly selinux?: string;
}

export interface HandoverImage {
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
  /** As the source holds it. */
  readonly state: ImageState;
  /** What each driver of the source remembered as the file's original (restored when the guest ends for good). */
  readonly originals: Partial<Record<DriverName, string>>;
}

export interface MigrationCookie {
  readonly v: 1;
  readonly name: string;
  readonly uuid: string;
  readonly images: readonly HandoverImage[];
  /** `--copy-storage-all`: the disks copied over NBD (then no image is handed over). */
  readonly copy?: CopyStorage;
}

/** libvirt's REMOTE_MIGRATE_COOKIE_MAX. */
export const COOKIE_MAX = 16384;

const SELINUX_XATTR = 'security.selinux';

export function imageState(h: FileHandle): ImageState {
  const st = h.current();
  const raw = fgetxattrQuiet(h.fd);
  return { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777, ...(raw !== undefined ? { selinux: raw } : {}) };
}

function fgetxattrQuiet(fd: number): string | undefined {
  try {
    const b = fgetxattr(fd, SELINUX_XATTR);
    if (b === undefined) return undefined;
    let end = b.length;
    while (end > 0 && b[end - 1] === 0) end--;
    return b.subarray(0, end).toString('utf8');
  } catch {
    return undefined; // a filesystem without xattrs: no label to hand over
  }
}

/** Is the file as `want` says (the holder has not changed)? */
export function sameHolder(now: ImageState, want: ImageState): boolean {
  return now.uid === want.uid && now.gid === want.gid && (want.selinux === undefined || now.selinux === want.selinux);
}

/** The source's description of what it hands over. */
export function describeHandover(
  name: string,
  uuid: string,
  resources: readonly GuestResource[],
  memory: LabelMemory,
  drivers: readonly DriverName[],
): MigrationCookie {
  const images: HandoverImage[] = [];
  for (const r of resources.filter(handedOver)) {
    const got = withHandle(r, 'hand over', (h) => ({ ident: h.identity, state: imageState(h) }));
    if (!got)
      throw new SvirtError('SVIRT_ERR_MIGRATE', `cannot hand over "${r.path}": it is no longer the file the guest was given`);
    const originals: Partial<Record<DriverName, string>> = {};
    for (const d of drivers) {
      const rec = memory.recall(d, r.path);
      if (rec && rec.users.includes(uuid)) originals[d] = rec.original;
    }
    images.push({ path: r.path, dev: got.ident.dev, ino: got.ident.ino, state: got.state, originals });
  }
  return { v: 1, name, uuid, images };
}

export function encodeCookie(c: MigrationCookie): Buffer {
  const b = Buffer.from(JSON.stringify(c), 'utf8');
  if (b.length > COOKIE_MAX)
    throw new SvirtError('SVIRT_ERR_MIGRATE', `the migration cookie is ${b.length} bytes, over ${COOKIE_MAX}`);
  return b;
}

/** The cookie from the other side: checked field by field (a hostile peer may send anything). */
export function decodeCookie(b: Buffer, uuid: string): MigrationCookie {
  let c: unknown;
  try {
    c = JSON.parse(b.toString('utf8'));
  } catch {
    throw new SvirtError('SVIRT_ERR_MIGRATE', "the migration cookie is not svirt's (a libvirtd source is not supported)");
  }
  const bad = (why: string): never => {
    throw new SvirtError('SVIRT_ERR_MIGRATE', `malformed migration cookie: ${why}`);
  };
  if (typeof c !== 'object' || c === null) return bad('not an object');
  const o = c as Record<string, unknown>;
  if (o['v'] !== 1) bad('unknown version');
  if (o['uuid'] !== uuid) bad('it names another guest');
  if (!Array.isArray(o['images'])) return bad('no image list');
  const images = (o['images'] as unknown[]).map((x): HandoverImage => {
    const i = x as Record<string, unknown>;
    const st = i['state'] as Record<string, unknown> | undefined;
    const num = (v: unknown): number => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : bad('a number field'));
    if (typeof i['path'] !== 'string' || !i['path'].startsWith('/')) bad('an image path');
    if (!st) return bad('an image state');
    const selinux = st['selinux'];
    if (selinux !== undefined && typeof selinux !== 'string') bad('a SELinux label');
    const originals: Partial<Record<DriverName, string>> = {};
    for (const [k, v] of Object.entries((i['originals'] as Record<string, unknown> | undefined) ?? {})) {
      if (!['dac', 'selinux', 'apparmor', 'landlock'].includes(k) || typeof v !== 'string') bad('an original label');
      originals[k as DriverName] = v as string;
    }
    return {
      path: i['path'] as string,
      dev: num(i['dev']),
      ino: num(i['ino']),
      state: {
        uid: num(st['uid']),
        gid: num(st['gid']),
        mode: num(st['mode']),
        ...(typeof selinux === 'string' ? { selinux } : {}),
      },
      originals,
    };
  });
  const copy = o['copy'] === undefined ? undefined : parseCopy(o['copy'], bad);
  if (copy && images.length > 0) bad('images both copied and handed over');
  return { v: 1, name: typeof o['name'] === 'string' ? o['name'] : '', uuid, images, ...(copy ? { copy } : {}) };
}

/** Puts a file back as the source held it (owner, mode, SELinux label), through its opened handle. */
export function giveBack(h: FileHandle, to: ImageState): void {
  h.setOwner(to.uid, to.gid, to.mode);
  if (to.selinux !== undefined) fsetxattr(h.fd, SELINUX_XATTR, to.selinux);
}

/** An image whose owner or label shows who holds it (the source's dac or selinux labelled it). */
export function showsHolder(i: HandoverImage): boolean {
  return i.originals.dac !== undefined || i.originals.selinux !== undefined;
}

/** The images no longer as the source holds them: taken by the destination. The first one taken is the commit point. */
export function takenImages(c: MigrationCookie): HandoverImage[] {
  return c.images.filter(showsHolder).filter((i) => {
    const now = withHandle({ path: i.path, ident: { dev: i.dev, ino: i.ino } }, 'check the holder of', (h) => imageState(h));
    return now !== undefined && !sameHolder(now, i.state);
  });
}
