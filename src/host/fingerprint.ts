/**
 * FNV-1a over a string's UTF-16 code units: a fingerprint for telling things apart that svirt
 * itself made (a schema, a ruleset), never for anything an attacker chooses to collide. It
 * spares a verb loading node:crypto (~4 ms of a CLI start, issue 17).
 */
/** FNV-1a's 32-bit offset basis, the first lane's. */
export const FNV_OFFSET_BASIS = 0x811c9dc5;

export function fnv1a32(text: string, basis = FNV_OFFSET_BASIS): number {
  let h = basis;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * 16 hex digits: two FNV-1a lanes with different offset bases. `fnv` computes one lane: this
 * file's loop, or the same in C (native.ts fnv1a32Native) where the addon is loaded anyway.
 */
export function fingerprintHex(text: string, fnv: (text: string, basis: number) => number = fnv1a32): string {
  const hex = (n: number): string => n.toString(16).padStart(8, '0');
  return hex(fnv(text, FNV_OFFSET_BASIS)) + hex(fnv(text, 0x050c5d1f));
}
