/**
 * remote_typed_param lists (virTypedParameter on the wire) as the migration procedures carry
 * them: a name, a type tag and a value. Read with limits (a hostile list cannot allocate
 * more than its declared maximum); values kept by name, the last of a repeated name wins.
 */
import { XdrError, type XdrReader, type XdrWriter } from './xdr.js';
import { STRING_MAX } from './protocol.js';

/** VIR_TYPED_PARAM_FIELD_LENGTH */
const FIELD_MAX = 80;

export type TypedValue = number | bigint | boolean | string;
export type TypedParams = ReadonlyMap<string, TypedValue>;

export function readTypedParams(r: XdrReader, max: number): Map<string, TypedValue> {
  const out = new Map<string, TypedValue>();
  const n = r.uint();
  if (n > max) throw new XdrError(`${n} typed parameters, more than ${max}`, r.offset);
  for (let i = 0; i < n; i++) {
    const field = r.string(FIELD_MAX);
    const type = r.int();
    switch (type) {
      case 1:
        out.set(field, r.int());
        break;
      case 2:
        out.set(field, r.uint());
        break;
      case 3:
        out.set(field, r.hyper());
        break;
      case 4:
        out.set(field, r.uhyper());
        break;
      case 5:
        r.opaqueFixed(8); // a double: no migration parameter svirt reads is one
        break;
      case 6:
        out.set(field, r.int() !== 0);
        break;
      case 7:
        out.set(field, r.string(STRING_MAX));
        break;
      default:
        throw new XdrError(`typed parameter "${field}" has unknown type ${type}`, r.offset);
    }
  }
  return out;
}

/** Writes strings as strings, booleans as booleans, bigints as ullong, numbers as uint. */
export function writeTypedParams(w: XdrWriter, params: TypedParams): void {
  w.uint(params.size);
  for (const [field, v] of params) {
    w.string(field, FIELD_MAX);
    if (typeof v === 'string') w.int(7).string(v, STRING_MAX);
    else if (typeof v === 'boolean') w.int(6).int(v ? 1 : 0);
    else if (typeof v === 'bigint') w.int(4).uhyper(v);
    else w.int(2).uint(v);
  }
}

export function stringParam(p: TypedParams, name: string): string | undefined {
  const v = p.get(name);
  return typeof v === 'string' ? v : undefined;
}
