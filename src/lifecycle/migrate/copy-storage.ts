/**
 * `--copy-storage-all` (libvirt's VIR_MIGRATE_NON_SHARED_DISK): the images are not shared, so
 * the source copies every writable disk over NBD into the destination's own file while the
 * guest runs (docs/migration.md, "Copying the storage"). This is the cookie's part of it: the
 * source says, at Begin, which disks it copies (target, format, virtual size, and which file
 * it is, so that a destination on the same storage refuses to copy a file onto itself), and
 * the destination answers, at Prepare, where its export listens and the token that admits a
 * connection to it.
 */
import { closeSync, constants, readFileSync, readSync } from 'node:fs';
import type { DiskDef, DomainDef } from '../../domain/domain-def.js';
import { diskLayers } from '../../domain/disk-layers.js';
import { SvirtError } from '../../errors.js';
import { withHandle } from '../../host/file-handle.js';
import type { GuestResource } from '../../security/driver.js';
import { diskRole } from '../../security/resources.js';

/** One disk the source copies. */
export interface CopyDisk {
  /** Its target (`vda`): the export's name, and how the destination's definition names it. */
  readonly dev: string;
  readonly format: 'raw' | 'qcow2';
  /** The guest-visible size in bytes: the destination's image must have exactly this. */
  readonly capacity: number;
  /** The source's file (device, inode): on the same kernel (`boot`), the destination must not name it. */
  readonly fileDev: number;
  readonly ino: number;
}

export interface CopyStorage {
  /** The source's kernel boot id (two test hosts on one machine share it; two machines do not). */
  readonly boot: string;
  readonly disks: readonly CopyDisk[];
  /** The destination's answer (Prepare): the TCP port of its export's relay and the token it admits. */
  readonly nbd?: { readonly port: number; readonly token: string };
  /** The destination's own journal: the images it created at Prepare (removed if the guest does not stay). */
  readonly created?: readonly CreatedImage[];
}

export interface CreatedImage {
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
}

/** This kernel's boot id. */
export function bootId(): string {
  return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
}

/** The disks a copy moves: every writable private image (libvirt's: not read-only, not shareable, with a medium). */
export function copiedDisks(def: DomainDef): DiskDef[] {
  return def.disks.filter((d) => d.path !== undefined && diskRole(d) === 'disk');
}

/** A disk svirt can copy: one raw or qcow2 file, no backing chain. Refused in one line otherwise. */
export function assertCopyable(disk: DiskDef, kind: string | undefined): 'raw' | 'qcow2' {
  const dev = disk.target.dev;
  if (diskLayers(disk).length > 1 || disk.backingStore !== undefined)
    throw new SvirtError('SVIRT_ERR_MIGRATE', `disk ${dev}: --copy-storage-all copies no backing chain here (flatten it first)`);
  if (disk.format !== 'raw' && disk.format !== 'qcow2')
    throw new SvirtError('SVIRT_ERR_MIGRATE', `disk ${dev}: --copy-storage-all copies raw or qcow2 images, not ${disk.format}`);
  if (kind !== undefined && kind !== 'file')
    throw new SvirtError('SVIRT_ERR_MIGRATE', `disk ${dev}: --copy-storage-all copies regular files here, not a ${kind}`);
  return disk.format;
}

const QCOW2_MAGIC = 0x514649fb;

/**
 * The guest-visible size of an image open as `fd` (read-only): a raw file's length, or a
 * qcow2 header's size field (checked for the magic). Reads 32 bytes at most.
 */
export function virtualSize(fd: number, format: 'raw' | 'qcow2', fileSize: number, path: string): number {
  if (format === 'raw') return fileSize;
  const b = Buffer.alloc(32);
  const n = readSync(fd, b, 0, 32, 0);
  if (n < 32 || b.readUInt32BE(0) !== QCOW2_MAGIC)
    throw new SvirtError('SVIRT_ERR_MIGRATE', `"${path}" is not a qcow2 image (no qcow2 header)`);
  const size = b.readBigUInt64BE(24);
  if (size > BigInt(Number.MAX_SAFE_INTEGER))
    throw new SvirtError('SVIRT_ERR_MIGRATE', `"${path}": its qcow2 size is out of range`);
  return Number(size);
}

/** The source's description of what it copies (Begin), from the running guest's definition and resources. */
export function describeCopy(live: DomainDef, resources: readonly GuestResource[]): CopyStorage {
  const disks: CopyDisk[] = [];
  for (const disk of copiedDisks(live)) {
    const path = disk.path as string;
    const r = resources.find((x) => x.role === 'disk' && (x.path === path || x.declared === path));
    if (!r) throw new SvirtError('SVIRT_ERR_INTERNAL', `disk ${disk.target.dev} has no resource`);
    const got = withHandle(r, 'copy', (h) => {
      const format = assertCopyable(disk, h.kind);
      const fd = h.reopen(constants.O_RDONLY);
      try {
        return { format, capacity: virtualSize(fd, format, h.current().size, r.path), ident: h.identity };
      } finally {
        closeSync(fd);
      }
    });
    if (!got) throw new SvirtError('SVIRT_ERR_MIGRATE', `cannot copy "${r.path}": it is no longer the file the guest was given`);
    disks.push({ dev: disk.target.dev, format: got.format, capacity: got.capacity, fileDev: got.ident.dev, ino: got.ident.ino });
  }
  return { boot: bootId(), disks };
}

/** The cookie's `copy` part from the other side, checked field by field. */
export function parseCopy(v: unknown, bad: (why: string) => never): CopyStorage {
  if (typeof v !== 'object' || v === null) return bad('the copy part');
  const o = v as Record<string, unknown>;
  const num = (x: unknown): number => (typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 ? x : bad('a number field'));
  const str = (x: unknown, re: RegExp): string => (typeof x === 'string' && re.test(x) ? x : bad('a string field'));
  if (!Array.isArray(o['disks']) || o['disks'].length > 64) bad('the copied disks');
  const disks = (o['disks'] as unknown[]).map((x): CopyDisk => {
    const d = (x ?? {}) as Record<string, unknown>;
    const format = d['format'] === 'raw' || d['format'] === 'qcow2' ? d['format'] : bad('a disk format');
    return {
      dev: str(d['dev'], /^[a-z][a-z0-9]{1,15}$/),
      format,
      capacity: num(d['capacity']),
      fileDev: num(d['fileDev']),
      ino: num(d['ino']),
    };
  });
  const nbdIn = o['nbd'] as Record<string, unknown> | undefined;
  const nbd =
    nbdIn === undefined ? undefined : { port: num(nbdIn['port']) % 65536, token: str(nbdIn['token'], /^[0-9a-f]{64}$/) };
  const created = Array.isArray(o['created'])
    ? (o['created'] as unknown[]).map((x): CreatedImage => {
        const c = (x ?? {}) as Record<string, unknown>;
        return { path: str(c['path'], /^\//), dev: num(c['dev']), ino: num(c['ino']) };
      })
    : undefined;
  return {
    boot: str(o['boot'], /^[0-9a-f-]{1,64}$/),
    disks,
    ...(nbd ? { nbd } : {}),
    ...(created ? { created } : {}),
  };
}
