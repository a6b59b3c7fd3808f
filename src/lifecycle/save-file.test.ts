import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HEADER_SIZE, SAVE_VERSION, readSaveHeader, writeHeader, type SaveHeader } from './save-file.js';

const PLACED = `<domain type='qemu'><name>g</name><devices><controller type='pci' index='0' model='pci-root'/></devices></domain>`;
const UNPLACED = `<domain type='qemu'><name>g</name><devices><disk type='file' device='disk'/></devices></domain>`;

/** A real save file in a temp dir: the header, then one byte of "stream"; read back from a fresh fd. */
function roundTrip(h: SaveHeader): SaveHeader {
  const dir = mkdtempSync(join(tmpdir(), 'svirt-save-'));
  try {
    const key = Buffer.alloc(32, 7);
    const file = join(dir, 'g.save');
    const fd = openSync(file, 'w+', 0o600);
    writeHeader(fd, h, key);
    writeSync(fd, Buffer.from([0]), 0, 1, HEADER_SIZE);
    closeSync(fd);
    const rd = openSync(file, 'r');
    try {
      return readSaveHeader(rd, file, key);
    } finally {
      closeSync(rd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const header = (version: 1 | 2 | 3, xml: string): SaveHeader => ({
  version,
  name: 'g',
  uuid: '6d2c5a6e-2b1f-4c33-9a51-0c2f5d0c1e01',
  xml,
  persistent: true,
  paused: false,
});

describe('save file header versions', () => {
  it('writes the current version and reads it back', () => {
    assert.equal(SAVE_VERSION, 3);
    assert.equal(roundTrip(header(3, UNPLACED)).version, 3);
  });

  it('refuses a version 2 file whose virtio input, share or secondary video QEMU placed itself; reads one whose only such device is the primary video', () => {
    const full = (devices: string): string =>
      `<domain type='qemu'><name>g</name><memory>65536</memory><os><type>hvm</type></os><devices><controller type='pci' index='0' model='pci-root'/>${devices}</devices></domain>`;
    const at = "<address type='pci' domain='0' bus='0' slot='5' function='0'/>";
    assert.equal(
      roundTrip(header(2, full("<video><model type='vga'/></video>"))).version,
      2,
      'the primary video: QEMU chose slot 2 too',
    );
    assert.equal(
      roundTrip(header(2, full(`<input type='tablet' bus='virtio'>${at}</input><input type='mouse' bus='ps2'/>`))).version,
      2,
    );
    assert.throws(
      () =>
        roundTrip(
          header(
            2,
            full("<video><model type='virtio'/></video><video><model type='virtio'/></video><input type='tablet' bus='virtio'/>"),
          ),
        ),
      (err: Error) => /let QEMU place video1, input0 itself.*the file is kept/.test(err.message) && !err.message.includes('\n'),
    );
  });

  it('reads a version 1 file whose definition was placed (it has its PCI root)', () => {
    assert.equal(roundTrip(header(1, PLACED)).xml, PLACED);
    assert.equal(roundTrip(header(1, PLACED.replace('pci-root', 'pcie-root'))).version, 1);
  });

  it('refuses a version 1 file saved before devices were placed, in one line that keeps the file', () => {
    assert.throws(
      () => roundTrip(header(1, UNPLACED)),
      (err: Error) =>
        /did not place devices yet.*the file is kept; start the guest afresh/.test(err.message) && !err.message.includes('\n'),
    );
  });
});

describe('saveKey', () => {
  it('gives several first saves at once one whole key, and leaves nothing else', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'svirt-savekey-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const module = new URL('./save-file.js', import.meta.url).href;
    const code = `const { saveKey } = await import(${JSON.stringify(module)}); process.stdout.write(saveKey(process.argv[1]).toString('hex'));`;
    const one = (): Promise<{ code: number | null; out: string; err: string }> =>
      new Promise((resolve, reject) => {
        const c = spawn(process.execPath, ['--input-type=module', '-e', code, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        c.stdout.on('data', (d: Buffer) => (out += d.toString()));
        c.stderr.on('data', (d: Buffer) => (err += d.toString()));
        c.once('error', reject);
        c.once('close', (code) => resolve({ code, out, err }));
      });
    const results = await Promise.all(Array.from({ length: 8 }, one));
    for (const r of results) assert.equal(r.code, 0, r.err);
    const keys = new Set(results.map((r) => r.out));
    assert.equal(keys.size, 1, `one key for all: ${[...keys].join(', ')}`);
    assert.match([...keys][0] ?? '', /^[0-9a-f]{64}$/);
    assert.deepEqual(readdirSync(dir), ['save.key'], 'no temporary file left');
    assert.equal(statSync(join(dir, 'save.key')).mode & 0o777, 0o600);
  });
});
