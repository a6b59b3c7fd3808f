/**
 * XDR (RFC 4506) as libvirt's RPC uses it: big-endian 4-byte units, variable data padded
 * to a multiple of 4. The reader checks every length against its declared maximum and
 * against the bytes actually left before it allocates anything, so a hostile length or a
 * truncated buffer ends in an {@link XdrError}, never in a huge allocation or a read past
 * the end.
 */

/** A message that does not decode: truncated, over a declared limit, or ill-formed. */
export class XdrError extends Error {
  /** Byte offset in the buffer where decoding failed. */
  readonly offset: number;

  constructor(message: string, offset: number) {
    super(`XDR: ${message} (at byte ${offset})`);
    this.name = 'XdrError';
    this.offset = offset;
  }
}

const INT_MIN = -0x8000_0000;
const INT_MAX = 0x7fff_ffff;
const UINT_MAX = 0xffff_ffff;
const HYPER_MIN = -(1n << 63n);
const HYPER_MAX = (1n << 63n) - 1n;
const UHYPER_MAX = (1n << 64n) - 1n;

function pad(n: number): number {
  return (4 - (n % 4)) % 4;
}

export class XdrReader {
  private readonly buf: Buffer;
  private pos: number;
  private readonly end: number;

  constructor(buf: Buffer, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): void {
    if (n > this.end - this.pos) throw new XdrError(`truncated ${what}: needs ${n} bytes, ${this.end - this.pos} left`, this.pos);
  }

  int(): number {
    this.need(4, 'int');
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  uint(): number {
    this.need(4, 'unsigned int');
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  hyper(): bigint {
    this.need(8, 'hyper');
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  uhyper(): bigint {
    this.need(8, 'unsigned hyper');
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  bool(): boolean {
    const at = this.pos;
    const v = this.int();
    if (v !== 0 && v !== 1) throw new XdrError(`bool must be 0 or 1, got ${v}`, at);
    return v === 1;
  }

  /** A length word, checked against `max` and against what is left (each element takes at least `unit` bytes). */
  private length(max: number, unit: number, what: string): number {
    const at = this.pos;
    const n = this.uint();
    if (n > max) throw new XdrError(`${what} length ${n} exceeds its maximum ${max}`, at);
    if (n * unit > this.end - this.pos) throw new XdrError(`${what} length ${n} runs past the end of the message`, at);
    return n;
  }

  opaqueFixed(n: number): Buffer {
    this.need(n + pad(n), `opaque[${n}]`);
    const v = Buffer.from(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n + pad(n);
    return v;
  }

  opaqueVar(max: number): Buffer {
    const n = this.length(max, 1, 'opaque');
    return this.opaqueFixed(n);
  }

  /** A UTF-8 string of at most `max` bytes; an embedded NUL is refused (C peers would cut there). */
  string(max: number): string {
    const at = this.pos;
    const bytes = this.opaqueVar(max);
    if (bytes.includes(0)) throw new XdrError('string contains a NUL byte', at);
    return bytes.toString('utf8');
  }

  /** `T *`: a bool saying whether the value follows. */
  optional<T>(read: (r: XdrReader) => T): T | undefined {
    return this.bool() ? read(this) : undefined;
  }

  /** `T name<max>`; every element takes at least `minSize` bytes (4 for XDR's smallest item). */
  array<T>(max: number, read: (r: XdrReader) => T, minSize = 4): T[] {
    const n = this.length(max, minSize, 'array');
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(read(this));
    return out;
  }

  /** Every byte was consumed: trailing data means the peer and we disagree about the struct. */
  done(): void {
    if (this.pos !== this.end) throw new XdrError(`${this.end - this.pos} unexpected trailing bytes`, this.pos);
  }
}

/** Builds an XDR buffer; grows as needed. Values outside their type's range throw. */
export class XdrWriter {
  private buf: Buffer;
  private pos = 0;

  constructor(initial = 256) {
    this.buf = Buffer.alloc(initial);
  }

  get length(): number {
    return this.pos;
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  int(v: number): this {
    if (!Number.isInteger(v) || v < INT_MIN || v > INT_MAX) throw new RangeError(`XDR int out of range: ${v}`);
    this.room(4);
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }

  uint(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > UINT_MAX) throw new RangeError(`XDR unsigned int out of range: ${v}`);
    this.room(4);
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }

  hyper(v: bigint | number): this {
    const b = BigInt(v);
    if (b < HYPER_MIN || b > HYPER_MAX) throw new RangeError(`XDR hyper out of range: ${b}`);
    this.room(8);
    this.buf.writeBigInt64BE(b, this.pos);
    this.pos += 8;
    return this;
  }

  uhyper(v: bigint | number): this {
    const b = BigInt(v);
    if (b < 0n || b > UHYPER_MAX) throw new RangeError(`XDR unsigned hyper out of range: ${b}`);
    this.room(8);
    this.buf.writeBigUInt64BE(b, this.pos);
    this.pos += 8;
    return this;
  }

  bool(v: boolean): this {
    return this.int(v ? 1 : 0);
  }

  opaqueFixed(bytes: Uint8Array, n = bytes.length): this {
    if (bytes.length !== n) throw new RangeError(`XDR opaque[${n}] given ${bytes.length} bytes`);
    this.room(n + pad(n));
    this.buf.set(bytes, this.pos);
    this.buf.fill(0, this.pos + n, this.pos + n + pad(n));
    this.pos += n + pad(n);
    return this;
  }

  opaqueVar(bytes: Uint8Array, max: number): this {
    if (bytes.length > max) throw new RangeError(`XDR opaque of ${bytes.length} bytes exceeds its maximum ${max}`);
    this.uint(bytes.length);
    return this.opaqueFixed(bytes);
  }

  string(s: string, max: number): this {
    return this.opaqueVar(Buffer.from(s, 'utf8'), max);
  }

  optional<T>(v: T | undefined, write: (w: XdrWriter, v: T) => void): this {
    this.bool(v !== undefined);
    if (v !== undefined) write(this, v);
    return this;
  }

  array<T>(items: readonly T[], max: number, write: (w: XdrWriter, v: T) => void): this {
    if (items.length > max) throw new RangeError(`XDR array of ${items.length} items exceeds its maximum ${max}`);
    this.uint(items.length);
    for (const item of items) write(this, item);
    return this;
  }

  /** Raw bytes already in XDR form (a header written elsewhere). */
  raw(bytes: Uint8Array): this {
    this.room(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
    return this;
  }

  /** Overwrites the 4-byte unsigned int at `offset` (the frame length, once known). */
  patchUint(offset: number, v: number): this {
    if (offset + 4 > this.pos) throw new RangeError(`XDR patch at ${offset} is past the end`);
    this.buf.writeUInt32BE(v, offset);
    return this;
  }

  toBuffer(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}
