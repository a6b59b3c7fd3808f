/** The vol-* verbs (virsh's names and output shapes) over src/lifecycle/storage.ts. */
import { closeSync, constants, fstatSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import { RESIZE_DELTA, RESIZE_SHRINK, type StoragePools, type VolumeInfo } from '../../lifecycle/storage.js';
import { escapeText } from '../../domain/xml.js';
import { SvirtError } from '../../errors.js';
import { arg, type ParsedArgs } from '../args.js';
import { output } from '../context.js';
import { bytes, openStorage } from './pool.js';
import { readXmlFile } from './read-xml.js';
import { table } from './table.js';

/** virsh's scaled integers: `10G`, `512M`, `1024` (bytes); K/M/G/T/P/E are powers of 1024, KB/MB/... of 1000. */
export function scaled(raw: string, what: string): number {
  const m = /^([0-9]{1,20})\s*([kKmMgGtTpPeE]?)(i?[bB])?$/.exec(raw.trim());
  if (!m) throw new SvirtError('SVIRT_ERR_USAGE', `${what}: ${JSON.stringify(raw)} is not a size (e.g. 10G, 512M, 1048576)`);
  const power = ' kmgtpe'.indexOf((m[2] ?? '').toLowerCase() || ' ');
  const base = m[3] !== undefined && m[3].toLowerCase() === 'b' ? 1000n : 1024n;
  const v = BigInt(m[1] ?? '0') * base ** BigInt(power);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new SvirtError('SVIRT_ERR_USAGE', `${what}: ${raw} is too large`);
  return Number(v);
}

/** A volume by `--pool POOL` and name, or by its path (its key). */
function find(s: StoragePools, args: ParsedArgs, vol: string): VolumeInfo {
  const pool = args.options.get('pool');
  if (pool !== undefined) return s.volume(pool, vol);
  if (vol.startsWith('/')) return s.byPath(vol);
  throw new SvirtError('SVIRT_ERR_USAGE', `${args.command ?? 'vol'}: name the pool (--pool POOL) or give the volume's path`);
}

export async function runVolList(args: ParsedArgs): Promise<number> {
  const vols = (await openStorage(args)).volumes(arg(args, 0, 'POOL'));
  output(
    args,
    table(
      ['Name', 'Path'],
      vols.map((v) => [v.name, v.path]),
    ),
    vols.map((v) => ({ name: v.name, path: v.path, format: v.format, capacity: v.capacity, allocation: v.allocation })),
  );
  return 0;
}

export async function runVolInfo(args: ParsedArgs): Promise<number> {
  const v = find(await openStorage(args), args, arg(args, 0, 'VOL'));
  const lines = [
    ['Name:', v.name],
    ['Type:', 'file'],
    ['Capacity:', bytes(v.capacity)],
    ['Allocation:', bytes(v.allocation)],
  ];
  output(args, lines.map(([k, x]) => `${(k ?? '').padEnd(16)}${x ?? ''}`).join('\n') + '\n', v);
  return 0;
}

export async function runVolDumpxml(args: ParsedArgs): Promise<number> {
  const s = await openStorage(args);
  const v = find(s, args, arg(args, 0, 'VOL'));
  const xml = s.volumeXml(v.pool, v.name);
  output(args, xml, { xml });
  return 0;
}

export async function runVolPath(args: ParsedArgs): Promise<number> {
  const v = find(await openStorage(args), args, arg(args, 0, 'VOL'));
  output(args, v.path, { path: v.path });
  return 0;
}

export async function runVolCreate(args: ParsedArgs): Promise<number> {
  const pool = arg(args, 0, 'POOL');
  const file = arg(args, 1, 'FILE');
  const v = await (await openStorage(args)).create(pool, await readXmlFile(file, 'storage volume XML'));
  output(args, `Vol ${v.name} created from ${file}`, v);
  return 0;
}

/** `vol-create-as POOL NAME CAPACITY [--format raw|qcow2]` */
export async function runVolCreateAs(args: ParsedArgs): Promise<number> {
  const pool = arg(args, 0, 'POOL');
  const name = arg(args, 1, 'NAME');
  const capacity = scaled(arg(args, 2, 'CAPACITY'), 'capacity');
  const format = args.options.get('format') ?? 'raw';
  const xml = `<volume><name>${escapeText(name)}</name><capacity>${capacity}</capacity><target><format type='${escapeText(format)}'/></target></volume>`;
  const v = await (await openStorage(args)).create(pool, xml);
  output(args, `Vol ${v.name} created`, v);
  return 0;
}

/** `vol-clone VOL NEWNAME --pool POOL` */
export async function runVolClone(args: ParsedArgs): Promise<number> {
  const s = await openStorage(args);
  const src = find(s, args, arg(args, 0, 'VOL'));
  const name = arg(args, 1, 'NEWNAME');
  const xml = `<volume><name>${escapeText(name)}</name><capacity>${src.capacity}</capacity><target><format type='${src.format}'/></target></volume>`;
  const v = await s.clone(src.pool, xml, { pool: src.pool, name: src.name });
  output(args, `Vol ${v.name} cloned from ${src.name}`, v);
  return 0;
}

export async function runVolDelete(args: ParsedArgs): Promise<number> {
  const s = await openStorage(args);
  const v = find(s, args, arg(args, 0, 'VOL'));
  s.deleteVolume(v.pool, v.name);
  output(args, `Vol ${v.name} deleted`, { name: v.name, path: v.path });
  return 0;
}

/** `vol-resize VOL CAPACITY --pool POOL [--delta] [--shrink]` */
export async function runVolResize(args: ParsedArgs): Promise<number> {
  const s = await openStorage(args);
  const v = find(s, args, arg(args, 0, 'VOL'));
  const raw = arg(args, 1, 'CAPACITY');
  const flags = (args.flags.has('delta') ? RESIZE_DELTA : 0) | (args.flags.has('shrink') ? RESIZE_SHRINK : 0);
  const after = await s.resize(v.pool, v.name, scaled(raw.replace(/^-/, ''), 'capacity'), flags);
  output(args, `Size of volume '${v.name}' successfully changed to ${raw}`, after);
  return 0;
}

const COPY = 1 << 20;

/** `vol-upload VOL FILE --pool POOL [--offset N] [--length N]`: FILE is read with the caller's own rights. */
export async function runVolUpload(args: ParsedArgs): Promise<number> {
  const s = await openStorage(args);
  const v = find(s, args, arg(args, 0, 'VOL'));
  const file = arg(args, 1, 'FILE');
  const offset = scaled(args.options.get('offset') ?? '0', 'offset');
  const length = scaled(args.options.get('length') ?? '0', 'length');
  const src = openSync(file, constants.O_RDONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
  let total = 0;
  try {
    if (!fstatSync(src).isFile()) throw new SvirtError('SVIRT_ERR_PATH_INVALID', `vol-upload: "${file}" is not a regular file`);
    const { fd, volume } = s.openData(v.pool, v.name, true);
    try {
      const room = volume.format === 'raw' ? volume.capacity : Math.floor(volume.capacity * 1.1) + 64 * 1024 * 1024;
      const limit = length === 0 ? room : Math.min(room, offset + length);
      const buf = Buffer.alloc(COPY);
      for (;;) {
        const n = readSync(src, buf, 0, COPY, null);
        if (n === 0) break;
        if (offset + total + n > limit)
          throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `vol-upload: "${file}" does not fit (${limit - offset} bytes)`);
        let off = 0;
        while (off < n) off += writeSync(fd, buf, off, n - off, offset + total + off);
        total += n;
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } finally {
    closeSync(src);
  }
  output(args, '', { name: v.name, bytes: total });
  return 0;
}

/** `vol-download VOL FILE --pool POOL [--offset N] [--length N]`: FILE is made new (O_EXCL) by the caller. */
export async function runVolDownload(args: ParsedArgs): Promise<number> {
  const s = await openStorage(args);
  const v = find(s, args, arg(args, 0, 'VOL'));
  const file = arg(args, 1, 'FILE');
  const offset = scaled(args.options.get('offset') ?? '0', 'offset');
  const length = scaled(args.options.get('length') ?? '0', 'length');
  const { fd } = s.openData(v.pool, v.name, false);
  let total = 0;
  try {
    const dst = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      const buf = Buffer.alloc(COPY);
      for (;;) {
        const want = length === 0 ? COPY : Math.min(COPY, length - total);
        const n = want <= 0 ? 0 : readSync(fd, buf, 0, want, offset + total);
        if (n === 0) break;
        let off = 0;
        while (off < n) off += writeSync(dst, buf, off, n - off);
        total += n;
      }
    } finally {
      closeSync(dst);
    }
  } finally {
    closeSync(fd);
  }
  output(args, '', { name: v.name, bytes: total });
  return 0;
}
