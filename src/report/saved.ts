/**
 * The last matrix of each kind `svirt demo` ran, kept in `<state>/demo/KIND.json` for
 * `svirt report`. Written to a new file and renamed over the old one: a reader never sees
 * half a document, and a link planted at the name is replaced, never followed.
 */
import { closeSync, constants, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { errnoOf } from '../errors.js';
import type { MATRIX_KINDS } from './collect.js';

/**
 * Writes `text` to a new file beside `file` (O_EXCL, no link followed, at `mode`) and renames
 * it over `file`: a reader sees the old document or the new one, never half of one, and a link
 * planted at the name is replaced, not followed. Throws the fs error; the new file is removed.
 */
export function writeWhole(file: string, text: string, mode: number): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    try {
      const buf = Buffer.from(text);
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

export function saveMatrix(stateDir: string, kind: (typeof MATRIX_KINDS)[number], result: unknown): void {
  const dir = join(stateDir, 'demo');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeWhole(join(dir, `${kind}.json`), JSON.stringify({ savedAt: new Date().toISOString(), result }), 0o600);
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
