import { readFileSync } from 'node:fs';

/** Numeric ids named in /etc/passwd and /etc/group: a dynamic guest uid/gid must be none of them. */
export function accountIds(root = '/etc'): { readonly uids: ReadonlySet<number>; readonly gids: ReadonlySet<number> } {
  return { uids: column(`${root}/passwd`, 2), gids: column(`${root}/group`, 2) };
}

function column(file: string, index: number): Set<number> {
  const ids = new Set<number>();
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // No such database (minimal container): there are no named ids to avoid.
    return ids;
  }
  for (const line of text.split('\n')) {
    const id = Number(line.split(':')[index]);
    if (Number.isInteger(id)) ids.add(id);
  }
  return ids;
}

/** Looks a user or group name up; undefined when absent. */
export function lookupId(kind: 'passwd' | 'group', name: string, root = '/etc'): number | undefined {
  let text = '';
  try {
    text = readFileSync(`${root}/${kind}`, 'utf8');
  } catch {
    return undefined; // no database, no such name
  }
  for (const line of text.split('\n')) {
    const parts = line.split(':');
    if (parts[0] === name) {
      const id = Number(parts[2]);
      if (Number.isInteger(id)) return id;
    }
  }
  return undefined;
}
