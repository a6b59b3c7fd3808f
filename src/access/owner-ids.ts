/**
 * The ids a guest's owner acts with, for the entrypoint check (entrypoints.ts): the uid and gid
 * recorded when they defined it (domain_owners), and the supplementary groups /etc/group gives
 * their user now. Root's guests (and guests from before owners were recorded) have none: root
 * may name any file the rules allow.
 */
import { readFileSync } from 'node:fs';
import type { UserIds } from '../host/native.js';
import type { Store } from '../store/store.js';

const MAX_GROUPS = 64;

function userName(uid: number): string | undefined {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[2] === String(uid) && f[0]) return f[0];
    }
  } catch {
    // no passwd file: a numeric owner with no name has no supplementary groups
  }
  return undefined;
}

function groupsOf(uid: number, gid: number): number[] {
  const name = userName(uid);
  const out = new Set<number>([gid]);
  if (name === undefined) return [...out];
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 4 && (f[3] ?? '').split(',').includes(name)) out.add(Number(f[2]));
      if (out.size >= MAX_GROUPS) break;
    }
  } catch {
    // no group file: the primary group alone
  }
  return [...out].filter((g) => Number.isInteger(g) && g >= 0);
}

export function ownerIds(store: Store, uuid: string): UserIds | undefined {
  const row = store.db.prepare('SELECT uid, gid FROM domain_owners WHERE uuid = ?').get(uuid) as
    { uid: number; gid: number } | undefined;
  if (!row || row.uid === 0) return undefined;
  return { uid: row.uid, gid: row.gid, groups: groupsOf(row.uid, row.gid) };
}
