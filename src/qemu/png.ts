/**
 * PNG facts svirt checks, and PPM → PNG for a QEMU built without libpng (its screendump then
 * writes only PPM). Pure functions over bytes, bounded by the caller's size cap.
 */
import { crc32, deflateSync } from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Width and height from a PNG's IHDR, or undefined when the bytes are not a PNG. */
export function pngSize(data: Uint8Array): { width: number; height: number } | undefined {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (b.length < 33 || !b.subarray(0, 8).equals(SIGNATURE) || b.toString('latin1', 12, 16) !== 'IHDR') return undefined;
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/** A binary PPM (P6, maxval 255) as an 8-bit RGB PNG. */
export function ppmToPng(ppm: Uint8Array): Buffer {
  const b = Buffer.from(ppm.buffer, ppm.byteOffset, ppm.byteLength);
  // header: P6 <ws> width <ws> height <ws> maxval <one ws>, comments not written by QEMU
  const m = /^P6\s+(\d+)\s+(\d+)\s+(\d+)\s/.exec(b.toString('latin1', 0, Math.min(64, b.length)));
  if (!m) throw new Error('not a binary PPM (P6)');
  const [width, height, maxval] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (maxval !== 255 || width <= 0 || height <= 0) throw new Error(`unsupported PPM ${width}x${height} maxval ${maxval}`);
  const pixels = b.subarray(m[0].length);
  const stride = width * 3;
  if (pixels.length < stride * height) throw new Error('the PPM is shorter than its header says');
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) pixels.copy(raw, y * (stride + 1) + 1, y * stride, (y + 1) * stride); // filter 0
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8 bits, RGB, deflate, no filter method, no interlace
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}
