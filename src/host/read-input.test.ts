import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { checkInputKind, readInput, readInputText } from './read-input.js';

function scratch(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'svirt-read-input-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function mkfifo(path: string): string {
  const r = spawnSync('mkfifo', [path]);
  if (r.status !== 0) throw new Error(`mkfifo failed: ${String(r.stderr)}`);
  return path;
}

const MODULE = new URL('./read-input.js', import.meta.url).href;

/**
 * Calls one of the module's functions in a child process, killed after `ms`: the calls on a
 * named file are synchronous, so a regression to waiting (a FIFO opened without O_NONBLOCK,
 * a huge file read whole) must fail here, not hang the test run. Returns what it threw.
 */
function inChild(fn: 'readInput' | 'checkInputKind', args: unknown[], ms = 5000): { message: string; code: string } {
  const code = `const m = await import(${JSON.stringify(MODULE)});
try { await m.${fn}(...${JSON.stringify(args)}); process.stdout.write('{}'); }
catch (e) { process.stdout.write(JSON.stringify({ message: e.message, code: e.code })); }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: ms });
  assert.equal(r.signal, null, `${fn}(${JSON.stringify(args)}) did not finish within ${ms} ms`);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { message?: string; code?: string };
  assert.ok(out.message !== undefined, `${fn}(${JSON.stringify(args)}) did not throw`);
  assert.equal(out.code, 'SVIRT_ERR_PATH_INVALID', out.message);
  assert.equal(out.message.split('\n').length, 1, 'one line');
  return { message: out.message, code: out.code };
}

describe('readInput', () => {
  it('reads a regular file, and follows a symlink unless told not to', async (t) => {
    const dir = scratch(t);
    const file = join(dir, 'd.xml');
    writeFileSync(file, '<domain/>');
    assert.equal(await readInputText(file), '<domain/>');
    const link = join(dir, 'link.xml');
    symlinkSync(file, link);
    assert.equal(await readInputText(link), '<domain/>');
    assert.match(
      inChild('readInput', [link, { followSymlinks: false }]).message,
      /^cannot read ".*link\.xml": it is a symbolic link$/,
    );
  });

  it('refuses a FIFO at once, though nobody writes to it', async (t) => {
    const fifo = mkfifo(join(scratch(t), 'fifo'));
    assert.equal(inChild('readInput', [fifo]).message, `cannot read "${fifo}": it is a FIFO, not a regular file`);
  });

  it('refuses /dev/zero, a directory and a socket without reading them', async (t) => {
    const dir = scratch(t);
    assert.equal(
      inChild('readInput', ['/dev/zero']).message,
      'cannot read "/dev/zero": it is a character device, not a regular file',
    );
    assert.match(inChild('readInput', [dir]).message, /: it is a directory, not a regular file$/);
    const sock = join(dir, 'sock');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    t.after(() => server.close());
    assert.match(inChild('readInput', [sock]).message, /: it is a socket, not a regular file$/);
  });

  it('refuses a file over the cap, naming the cap, without reading it whole', async (t) => {
    const dir = scratch(t);
    const big = join(dir, 'big.xml');
    writeFileSync(big, '');
    truncateSync(big, 64 * 1024 * 1024 * 1024); // a 64 GiB sparse file: reading it would take minutes
    assert.equal(
      inChild('readInput', [big, { what: 'domain XML' }]).message,
      `cannot read "${big}": it is larger than 16 MiB, the limit for domain XML`,
    );
    const small = join(dir, 'small');
    writeFileSync(small, 'x'.repeat(101));
    assert.match(inChild('readInput', [small, { maxBytes: 100 }]).message, /100 bytes/);
    assert.equal((await readInput(small, { maxBytes: 101 })).length, 101);
  });

  it('caps a file whose size the kernel does not tell (procfs says 0)', async () => {
    assert.match(
      inChild('readInput', ['/proc/self/maps', { maxBytes: 16, what: 'test input' }]).message,
      /it is larger than 16 bytes, the limit for test input$/,
    );
  });

  it('names the errno of a path that cannot be opened', async (t) => {
    const missing = join(scratch(t), 'nope.xml');
    assert.equal(inChild('readInput', [missing]).message, `cannot read "${missing}": ENOENT`);
  });
});

describe('checkInputKind', () => {
  it('lets regular files, block devices (for disks) and missing paths through; refuses the rest by kind', async (t) => {
    const dir = scratch(t);
    const file = join(dir, 'f');
    writeFileSync(file, '');
    checkInputKind(file, 'regular', 'save file');
    checkInputKind(join(dir, 'missing'), 'regular', 'save file');
    const fifo = mkfifo(join(dir, 'fifo'));
    assert.equal(
      inChild('checkInputKind', [fifo, 'regular-or-block', 'disk hdc']).message,
      `cannot use "${fifo}" as disk hdc: it is a FIFO, not a regular file or a block device`,
    );
    assert.equal(
      inChild('checkInputKind', ['/dev/zero', 'regular', 'save file']).message,
      'cannot use "/dev/zero" as save file: it is a character device, not a regular file',
    );
  });
});

describe('readInput of standard input', () => {
  const child = (code: string, input: string | Buffer): { status: number | null; stdout: string; stderr: string } => {
    const mod = new URL('./read-input.js', import.meta.url).href;
    const r = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', `const m = await import(${JSON.stringify(mod)}); ${code}`],
      {
        input,
        encoding: 'utf8',
      },
    );
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it('reads fd 0 to its end, twice in one process (the warm worker lends a new fd 0 to each command)', () => {
    const r = child(
      `const a = await m.readInputText('-'); const b = await m.readInputText('-'); process.stdout.write(JSON.stringify([a.length, b]));`,
      'x'.repeat(200_000),
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [200_000, '']);
  });

  it('refuses more than the cap, naming it', () => {
    const r = child(
      `try { await m.readInput('-', { maxBytes: 1000, what: 'a domain XML' }); } catch (e) { process.stdout.write(e.message); }`,
      Buffer.alloc(5000, 0x41),
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /standard input is larger than .*, the limit for a domain XML/);
  });
});
