import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mapFile } from './native.js';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'svirt-map-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('native addon: mapFile (how bin/svirt.js loads the bundles)', () => {
  it('gives a file as a latin1 string and as an ArrayBuffer, byte for byte', (t) => {
    const file = join(tempDir(t), 'f');
    const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) % 256));
    writeFileSync(file, bytes);
    const text = mapFile(file, true);
    assert.equal(text.length, bytes.length);
    assert.equal(text, bytes.toString('latin1'), 'every byte one latin1 character, 0x80-0xff included');
    assert.ok(Buffer.from(mapFile(file, false)).equals(bytes));
    writeFileSync(file, '');
    assert.equal(mapFile(file, true), '');
    assert.equal(mapFile(file, false).byteLength, 0);
  });

  it('refuses what is not a regular file, without blocking on a FIFO, and what is too large', (t) => {
    const dir = tempDir(t);
    const fifo = join(dir, 'fifo');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    for (const [path, code] of [
      [join(dir, 'missing'), 'ENOENT'],
      [dir, 'EINVAL'],
      [fifo, 'EINVAL'],
      ['/dev/zero', 'EINVAL'],
    ] as const) {
      assert.throws(() => mapFile(path, true), { code, syscall: 'mmap', path });
    }
    const big = join(dir, 'big');
    writeFileSync(big, '');
    truncateSync(big, 257 * 1024 * 1024); // sparse: nothing is written
    assert.throws(() => mapFile(big, false), { code: 'EFBIG' });
  });
});
