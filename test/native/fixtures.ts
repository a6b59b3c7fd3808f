/** What the native programs' tests share: a Landlock base ruleset and open fds to hand down. */
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';

/** What /bin/sh, cat, bash and friends need to start under Landlock. */
export const SYSTEM_RULES = [
  { path: '/usr', access: ['execute', 'read_file', 'read_dir'] },
  { path: '/etc', access: ['read_file', 'read_dir'] },
  { path: '/lib', access: ['execute', 'read_file', 'read_dir'], optional: true },
  { path: '/lib64', access: ['execute', 'read_file', 'read_dir'], optional: true },
  { path: '/dev/null', access: ['read_file', 'write_file'] },
] as const;

/** Two fds open on one scratch file (closed when the test ends), as a guest's images are handed down. */
export function twoOpenFds(t: { after(fn: () => void): void }, prefix: string): [number, number] {
  const dir = tempDir(t, prefix);
  writeFileSync(join(dir, 'img'), 'x');
  const a = openSync(join(dir, 'img'), 'r');
  const b = openSync(join(dir, 'img'), 'r');
  t.after(() => {
    closeSync(a);
    closeSync(b);
  });
  return [a, b];
}
