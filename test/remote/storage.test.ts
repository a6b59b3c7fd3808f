/**
 * Storage pools and volumes through `svirt serve` with Debian's virsh (issue 14, part 3):
 * the default pool made on first use, every pool and volume procedure, upload and download
 * streams, a volume labelled for its guest only while the guest runs (and refused to
 * vol-delete then), `undefine --remove-all-storage`, formats never probed, read-only refusals,
 * and pool lifecycle events (`virsh pool-event`).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { domainXml, owner, qemuAsRootSkip, scratch, svirt, svirtOk, writeDomain } from '../helpers.js';
import { haveVirsh, startServer, uri, virsh, virshOk, VIRSH } from './support.js';

const skip = qemuAsRootSkip() || (haveVirsh() ? false : 'virsh (libvirt-clients) is not installed');

describe('storage pools and volumes over svirt serve (virsh)', { skip }, () => {
  it('default pool on first use; vol-create-as, info, dumpxml, clone, resize, upload, download, delete', async (t) => {
    const dir = scratch(t);
    const srv = await startServer(t, dir);
    const s = srv.socket;
    const images = join(dir, 'images');

    assert.match(await virshOk(s, ['vol-create-as', 'default', 'a.qcow2', '1G', '--format', 'qcow2']), /Vol a.qcow2 created/);
    assert.match(await virshOk(s, ['pool-list', '--all']), /^\s*default\s+active\s+yes\s*$/m);
    const pinfo = await virshOk(s, ['pool-info', 'default']);
    assert.match(pinfo, /^State:\s+running$/m);
    assert.match(pinfo, /^Capacity:\s+\d/m);
    assert.match(await virshOk(s, ['pool-dumpxml', 'default']), new RegExp(`<path>${images}</path>`));
    assert.equal(owner(images).mode & 0o777, 0o711, 'the default pool is 0711 as libvirt makes its images dir');

    const info = await virshOk(s, ['vol-info', 'a.qcow2', '--pool', 'default']);
    assert.match(info, /^Capacity:\s+1.00 GiB$/m);
    const vxml = await virshOk(s, ['vol-dumpxml', 'a.qcow2', '--pool', 'default']);
    assert.match(vxml, /<format type='qcow2'\/>/);
    assert.match(vxml, /<mode>0600<\/mode>/);
    assert.equal(readFileSync(join(images, 'a.qcow2')).subarray(0, 4).toString('latin1'), 'QFI\xfb', 'a real qcow2 image');
    assert.equal((await virshOk(s, ['vol-path', 'a.qcow2', '--pool', 'default'])).trim(), join(images, 'a.qcow2'));
    assert.equal((await virshOk(s, ['vol-key', join(images, 'a.qcow2')])).trim(), join(images, 'a.qcow2'));

    assert.match(await virshOk(s, ['vol-clone', 'a.qcow2', 'b.qcow2', '--pool', 'default']), /Vol b.qcow2 cloned from a.qcow2/);
    assert.match(
      await virshOk(s, ['vol-dumpxml', 'b.qcow2', '--pool', 'default']),
      /<capacity unit='bytes'>1073741824<\/capacity>/,
    );
    await virshOk(s, ['vol-resize', 'b.qcow2', '2G', '--pool', 'default']);
    assert.match(await virshOk(s, ['vol-info', 'b.qcow2', '--pool', 'default']), /^Capacity:\s+2.00 GiB$/m);
    const shrink = await virsh(s, ['vol-resize', 'b.qcow2', '1G', '--pool', 'default']);
    assert.notEqual(shrink.code, 0);
    assert.match(shrink.stderr, /without --shrink|shrink/);

    // Upload and download: libvirt's streams, both ways, byte for byte.
    await virshOk(s, ['vol-create-as', 'default', 'r.raw', '1M']);
    const data = randomBytes(1 << 20);
    const up = join(dir, 'up.bin');
    writeFileSync(up, data);
    await virshOk(s, ['vol-upload', 'r.raw', up, '--pool', 'default']);
    const down = join(dir, 'down.bin');
    await virshOk(s, ['vol-download', 'r.raw', down, '--pool', 'default']);
    assert.ok(readFileSync(down).equals(data), 'downloaded what was uploaded');
    const part = join(dir, 'part.bin');
    await virshOk(s, ['vol-download', 'r.raw', part, '--pool', 'default', '--offset', '4096', '--length', '8192']);
    assert.ok(readFileSync(part).equals(data.subarray(4096, 4096 + 8192)));
    // Past the end of a raw volume: refused, the file keeps its size.
    writeFileSync(up, Buffer.concat([data, data]));
    const over = await virsh(s, ['vol-upload', 'r.raw', up, '--pool', 'default']);
    assert.notEqual(over.code, 0);
    assert.equal(owner(join(images, 'r.raw')).mode & 0o777, 0o600);
    assert.match(await virshOk(s, ['vol-info', 'r.raw', '--pool', 'default']), /^Capacity:\s+1.00 MiB$/m);

    // A raw volume whose bytes look like qcow2 (backing file /etc/shadow) stays raw: never probed.
    writeFileSync(up, readFileSync(join(images, 'a.qcow2')).subarray(0, 512));
    await virshOk(s, ['vol-upload', 'r.raw', up, '--pool', 'default']);
    assert.match(await virshOk(s, ['vol-dumpxml', 'r.raw', '--pool', 'default']), /<format type='raw'\/>/);

    // A read-only client lists but changes nothing.
    assert.match(await virshOk(s, ['vol-list', 'default'], { readonly: true }), /a\.qcow2/);
    const ro = await virsh(s, ['vol-create-as', 'default', 'x.raw', '1M'], { readonly: true });
    assert.match(ro.stderr, /read only access prevents virStorageVolCreateXML/);
    const rod = await virsh(s, ['vol-download', 'r.raw', join(dir, 'ro.bin'), '--pool', 'default'], { readonly: true });
    assert.notEqual(rod.code, 0, 'a volume download needs the read-write socket, as with libvirtd');

    assert.match(await virshOk(s, ['vol-delete', 'b.qcow2', '--pool', 'default']), /Vol b.qcow2 deleted/);
    assert.equal(existsSync(join(images, 'b.qcow2')), false);
    const gone = await virsh(s, ['vol-info', 'b.qcow2', '--pool', 'default']);
    assert.match(gone.stderr, /Storage volume not found/);
    const badName = await virsh(s, ['vol-create-as', 'default', '../escape', '1M']);
    assert.notEqual(badName.code, 0);
    assert.equal(existsSync(join(dir, 'escape')), false);
  });

  it('a read-only client never makes the default pool: it sees none until a read-write client asks', async (t) => {
    const dir = scratch(t);
    const srv = await startServer(t, dir);
    const s = srv.socket;
    assert.doesNotMatch(await virshOk(s, ['pool-list', '--all'], { readonly: true }), /default/);
    const info = await virsh(s, ['pool-info', 'default'], { readonly: true });
    assert.notEqual(info.code, 0);
    assert.match(info.stderr, /Storage pool not found/);
    assert.equal(existsSync(join(dir, 'images')), false, 'no images dir made for a read-only client');
    assert.match(await virshOk(s, ['pool-list', '--all']), /^\s*default\s+active\s+yes\s*$/m);
    assert.ok(existsSync(join(dir, 'images')));
    assert.match(await virshOk(s, ['pool-list', '--all'], { readonly: true }), /^\s*default\s+active\s+yes\s*$/m);
  });

  it('pool-define-as, build, start, autostart, refresh, destroy, delete, undefine; refused trees; pool events', async (t) => {
    const dir = scratch(t);
    const srv = await startServer(t, dir);
    const s = srv.socket;
    const events = spawn(VIRSH, ['-c', uri(s), 'pool-event', '--event', 'lifecycle', '--loop', '--timeout', '20'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.after(() => events.kill('SIGKILL'));
    let seen = '';
    events.stdout.on('data', (d: Buffer) => (seen += d.toString()));
    await new Promise((r) => setTimeout(r, 1500));

    const p = join(dir, 'p2');
    assert.match(await virshOk(s, ['pool-define-as', 'p2', 'dir', '--target', p]), /Pool p2 defined/);
    await virshOk(s, ['pool-build', 'p2']);
    assert.ok(existsSync(p));
    await virshOk(s, ['pool-start', 'p2']);
    await virshOk(s, ['pool-autostart', 'p2']);
    assert.match(await virshOk(s, ['pool-list', '--all']), /^\s*p2\s+active\s+yes\s*$/m);
    await virshOk(s, ['pool-refresh', 'p2']);
    assert.match(await virshOk(s, ['vol-list', 'p2']), /Name\s+Path/);
    await virshOk(s, ['pool-destroy', 'p2']);
    assert.match(await virshOk(s, ['pool-list', '--inactive']), /^\s*p2\s+inactive\s+yes\s*$/m);
    await virshOk(s, ['pool-delete', 'p2']);
    assert.equal(existsSync(p), false);
    await virshOk(s, ['pool-undefine', 'p2']);
    assert.doesNotMatch(await virshOk(s, ['pool-list', '--all']), /p2/);

    for (const bad of ['/etc/svirt-pool', '/usr/lib/x', dir, join(dir, 'run')]) {
      const r = await virsh(s, ['pool-define-as', 'bad', 'dir', '--target', bad]);
      assert.notEqual(r.code, 0, `${bad} cannot be a pool`);
      assert.match(r.stderr, /cannot be a pool/);
    }
    const other = await virsh(s, ['pool-define-as', 'lvm', 'logical', '--target', join(dir, 'x')]);
    assert.match(other.stderr, /unsupported configuration: .*pool type "logical"/);

    const deadline = Date.now() + 10_000;
    while (!/Undefined/.test(seen) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    for (const ev of ['Defined', 'Started', 'Stopped', 'Undefined']) {
      assert.match(seen, new RegExp(`event 'lifecycle' for storage pool p2: ${ev}`), `pool-event saw ${ev}: ${seen}`);
    }
  });

  it('a pool volume is the guest labels only while it runs; vol-delete refused then; undefine --remove-all-storage', async (t) => {
    const dir = scratch(t);
    const srv = await startServer(t, dir);
    const s = srv.socket;
    await virshOk(s, ['vol-create-as', 'default', 'g.qcow2', '64M', '--format', 'qcow2']);
    const vol = join(dir, 'images', 'g.qcow2');
    const xml = domainXml('pg', [{ path: vol, dev: 'vda', format: 'qcow2' }]);
    await virshOk(s, ['define', writeDomain(dir, 'pg', xml)]);
    await virshOk(s, ['start', 'pg', '--paused']);
    const running = owner(vol);
    assert.notEqual(running.uid, 0, 'the volume belongs to the guest uid while it runs');
    const del = await virsh(s, ['vol-delete', 'g.qcow2', '--pool', 'default']);
    assert.match(del.stderr, /in use by running guest\(s\) pg/);
    const upl = await virsh(s, ['vol-upload', 'g.qcow2', vol, '--pool', 'default']);
    assert.notEqual(upl.code, 0);
    await virshOk(s, ['destroy', 'pg']);
    const after = owner(vol);
    assert.deepEqual([after.uid, after.gid, after.mode & 0o777], [0, 0, 0o600], 'restored to root 0600 after');
    const out = await virshOk(s, ['undefine', 'pg', '--remove-all-storage']);
    assert.match(out, /Volume 'vda'\(.*g\.qcow2\) removed/);
    assert.equal(existsSync(vol), false);
  });

  it('the CLI verbs: pool-list, vol-create-as, vol-upload/download, vol-delete refused in use, undefine --remove-all-storage', async (t) => {
    const dir = scratch(t);
    await svirtOk(dir, ['vol-create-as', 'default', 'c.raw', '2M']);
    assert.match(await svirtOk(dir, ['pool-list']), /^\s*default\s+active\s+yes\s*$/m);
    const data = randomBytes(2 << 20);
    writeFileSync(join(dir, 'in.bin'), data);
    await svirtOk(dir, ['vol-upload', 'c.raw', join(dir, 'in.bin'), '--pool', 'default']);
    await svirtOk(dir, ['vol-download', join(dir, 'images', 'c.raw'), join(dir, 'out.bin')]);
    assert.ok(readFileSync(join(dir, 'out.bin')).equals(data));
    assert.match(await svirtOk(dir, ['vol-info', 'c.raw', '--pool', 'default']), /^Capacity:\s+2.00 MiB$/m);
    const vol = join(dir, 'images', 'c.raw');
    await svirtOk(dir, [
      '--security-driver',
      'dac,landlock',
      'define',
      writeDomain(dir, 'cg', domainXml('cg', [{ path: vol, dev: 'vda' }])),
    ]);
    await svirtOk(dir, ['--security-driver', 'dac,landlock', 'start', 'cg', '--paused']);
    const del = await svirt(dir, ['vol-delete', 'c.raw', '--pool', 'default']);
    assert.match(del.stderr, /in use by running guest\(s\) cg/);
    await svirtOk(dir, ['destroy', 'cg']);
    const out = await svirtOk(dir, ['undefine', 'cg', '--remove-all-storage']);
    assert.match(out, /Volume 'vda'\(.*c\.raw\) removed\./);
    assert.equal(existsSync(vol), false);
  });
});
