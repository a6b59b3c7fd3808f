import { statSync, chmodSync } from 'node:fs';
import { SvirtError } from '../errors.js';
import { lgetxattr, lremovexattr, lsetxattr } from './native.js';

/** POSIX ACL xattr layout (linux/posix_acl_xattr.h): a version, then 8-byte entries. */
const XATTR = 'system.posix_acl_access';
const VERSION = 2;
const USER_OBJ = 0x01;
const USER = 0x02;
const GROUP_OBJ = 0x04;
const GROUP = 0x08;
const MASK = 0x10;
const OTHER = 0x20;
const UNDEFINED_ID = 0xffffffff;

interface Entry {
  readonly tag: number;
  readonly perm: number;
  readonly id: number;
}

function parse(buf: Buffer): Entry[] {
  if (buf.length < 4 || (buf.length - 4) % 8 !== 0 || buf.readUInt32LE(0) !== VERSION) {
    throw new SvirtError('SVIRT_ERR_HOST', 'unexpected POSIX ACL format');
  }
  const out: Entry[] = [];
  for (let o = 4; o < buf.length; o += 8)
    out.push({ tag: buf.readUInt16LE(o), perm: buf.readUInt16LE(o + 2), id: buf.readUInt32LE(o + 4) });
  return out;
}

function format(entries: readonly Entry[]): Buffer {
  const sorted = [...entries].sort((a, b) => a.tag - b.tag || a.id - b.id);
  const buf = Buffer.alloc(4 + 8 * sorted.length);
  buf.writeUInt32LE(VERSION, 0);
  sorted.forEach((e, i) => {
    buf.writeUInt16LE(e.tag, 4 + 8 * i);
    buf.writeUInt16LE(e.perm, 6 + 8 * i);
    buf.writeUInt32LE(e.id, 8 + 8 * i);
  });
  return buf;
}

function current(path: string): Entry[] {
  const buf = lgetxattr(path, XATTR);
  if (buf) return parse(buf);
  const mode = statSync(path).mode;
  return [
    { tag: USER_OBJ, perm: (mode >> 6) & 7, id: UNDEFINED_ID },
    { tag: GROUP_OBJ, perm: (mode >> 3) & 7, id: UNDEFINED_ID },
    { tag: OTHER, perm: mode & 7, id: UNDEFINED_ID },
  ];
}

/** The mask is the union of the group class: named users, the owning group, named groups. */
function withMask(entries: Entry[]): Entry[] {
  const rest = entries.filter((e) => e.tag !== MASK);
  const named = rest.filter((e) => e.tag === USER || e.tag === GROUP);
  if (named.length === 0) return rest;
  const mask = rest.filter((e) => e.tag === USER || e.tag === GROUP || e.tag === GROUP_OBJ).reduce((m, e) => m | e.perm, 0);
  return [...rest, { tag: MASK, perm: mask, id: UNDEFINED_ID }];
}

/** Adds (or replaces) a named-user entry: `uid` may use the file with `perm` (rwx bits). */
export function grantUser(path: string, uid: number, perm: number): void {
  const entries = current(path).filter((e) => !(e.tag === USER && e.id === uid));
  lsetxattr(path, XATTR, format(withMask([...entries, { tag: USER, perm, id: uid }])));
}

/**
 * Removes `uid`'s entry. When no named entry is left, the ACL goes and the mode's group
 * bits are the owning group's again: the file is exactly as before the first grant.
 */
export function revokeUser(path: string, uid: number): void {
  const buf = lgetxattr(path, XATTR);
  if (!buf) return;
  const entries = withMask(parse(buf).filter((e) => !(e.tag === USER && e.id === uid)));
  if (entries.some((e) => e.tag === USER || e.tag === GROUP)) {
    lsetxattr(path, XATTR, format(entries));
    return;
  }
  const groupObj = entries.find((e) => e.tag === GROUP_OBJ)?.perm ?? 0;
  lremovexattr(path, XATTR);
  const mode = statSync(path).mode & 0o7777;
  chmodSync(path, (mode & ~0o070) | (groupObj << 3));
}

/** Named users in the ACL (for tests and diagnostics). */
export function aclUsers(path: string): number[] {
  const buf = lgetxattr(path, XATTR);
  return buf
    ? parse(buf)
        .filter((e) => e.tag === USER)
        .map((e) => e.id)
    : [];
}
