/**
 * The last matrix of each kind `svirt demo` ran, kept in `<state>/demo/KIND.json` for
 * `svirt report`. Written to a new file and renamed over the old one: a reader never sees
 * half a document, and a link planted at the name is replaced, never followed.
 */
import { closeSync, constants, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { errnoOf } from '../errors.js';
import type { MATRIX_KINDS } from './collect.js';

export function saveMatrix(stateDir: string, kind: (typeof MATRIX_KINDS)[number], result: unknown): void {
  const dir = join(stateDir, 'demo');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${kind}.${process.pid}.tmp`);
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    const text = JSON.stringify({ savedAt: new Date().toISOString(), result });
    let off = 0;
    const buf = Buffer.from(text);
    while (off < buf.length) off += writeSync(fd, buf, off);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, join(dir, `${kind}.json`));
}

/** saveMatrix, with a failure reported as a warning: the demo's own verdict stands. */
export function trySaveMatrix(stateDir: string, kind: (typeof MATRIX_KINDS)[number], result: unknown): void {
  try {
    saveMatrix(stateDir, kind, result);
  } catch (err) {
    process.stderr.write(
      `warning: demo: cannot keep this matrix for svirt report in "${stateDir}": ${errnoOf(err) ?? String(err)}\n`,
    );
  }
}
