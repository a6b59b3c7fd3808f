import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeFile, removeTree } from './files.js';

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'svirt-files-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('removeTree and removeFile', () => {
  it('removeTree removes a nested tree, its files, links and sockets, and never what a link points to', async (t) => {
    const dir = scratch(t);
    const outside = join(dir, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'keep'), 'precious');
    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'a', 'b'), { recursive: true });
    writeFileSync(join(tree, 'a', 'b', 'file'), 'x');
    writeFileSync(join(tree, 'top'), 'y');
    symlinkSync(outside, join(tree, 'a', 'to-dir'));
    symlinkSync(join(outside, 'keep'), join(tree, 'to-file'));
    symlinkSync(join(dir, 'nowhere'), join(tree, 'dangling'));
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(join(tree, 'a', 'sock'), resolve));
    t.after(() => server.close());
    removeTree(tree);
    assert.equal(existsSync(tree), false);
    assert.equal(readFileSync(join(outside, 'keep'), 'utf8'), 'precious', 'a link was followed');
  });

  it('removeTree takes a plain file, a link to a directory (the link only) and nothing at all', (t) => {
    const dir = scratch(t);
    writeFileSync(join(dir, 'f'), '');
    removeTree(join(dir, 'f'));
    assert.equal(existsSync(join(dir, 'f')), false);
    mkdirSync(join(dir, 'target'));
    writeFileSync(join(dir, 'target', 'keep'), 'k');
    symlinkSync(join(dir, 'target'), join(dir, 'link'));
    removeTree(join(dir, 'link'));
    assert.equal(readFileSync(join(dir, 'target', 'keep'), 'utf8'), 'k');
    removeTree(join(dir, 'missing'));
    removeTree(join(dir, 'missing', 'deeper'));
  });

  it('removeTree takes a tree deeper than its own walk goes (rmSync, from a directory it holds)', (t) => {
    const dir = scratch(t);
    const deep = join(dir, ...Array.from({ length: 40 }, (_, i) => `d${i}`));
    mkdirSync(deep, { recursive: true });
    writeFileSync(join(deep, 'leaf'), '');
    removeTree(join(dir, 'd0'));
    assert.equal(existsSync(join(dir, 'd0')), false);
  });

  it('removeFile removes a file or a link, ignores nothing there, and refuses a directory', (t) => {
    const dir = scratch(t);
    writeFileSync(join(dir, 'f'), '');
    symlinkSync(join(dir, 'f'), join(dir, 'l'));
    removeFile(join(dir, 'l'));
    assert.equal(existsSync(join(dir, 'f')), true, 'the link went, not its target');
    removeFile(join(dir, 'f'));
    assert.equal(existsSync(join(dir, 'f')), false);
    removeFile(join(dir, 'f'));
    mkdirSync(join(dir, 'd'));
    assert.throws(() => removeFile(join(dir, 'd')), /EISDIR/);
    assert.equal(existsSync(join(dir, 'd')), true);
  });
});
