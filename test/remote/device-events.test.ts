/**
 * Device-added and device-removed events through `svirt serve` (issue 14): `virsh event --all`
 * sees a disk attached by virsh and detached by the svirt CLI, named by QEMU's device id.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { domainXml, makeImage, scratch, svirtOk, writeDomain } from '../helpers.js';
import { VIRSH, qemuDacVirshSkip, startServer, uri, virshOk } from './support.js';

const skip = qemuDacVirshSkip();

describe('svirt serve: device events', { skip, timeout: 120_000 }, () => {
  it('virsh event --all sees device-added and device-removed for a hot-plugged disk', async (t) => {
    const dir = scratch(t);
    const server = await startServer(t, dir);
    const s = server.socket;
    const img = makeImage(join(dir, 'd.img'), 4);
    await virshOk(s, ['define', writeDomain(dir, 'dv', domainXml('dv', [{ path: img, dev: 'vda' }]))]);
    await virshOk(s, ['start', 'dv', '--paused']);
    const child = spawn(VIRSH, ['-c', uri(s), 'event', '--all', '--loop', '--timeout', '60'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.after(() => {
      child.kill('SIGKILL'); // a no-op once it exited, even reaped before its exit event ran (ESRCH)
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const until = async (re: RegExp): Promise<void> => {
      const deadline = Date.now() + 20_000;
      while (!re.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    };
    await new Promise((r) => setTimeout(r, 1000)); // its registrations are in before the change
    const extra = makeImage(join(dir, 'e.img'), 4);
    await virshOk(s, ['attach-disk', 'dv', extra, 'sdb', '--targetbus', 'scsi', '--live']);
    await until(/device-added' for domain 'dv': disk-sdb/);
    await svirtOk(dir, ['--security-driver', 'dac,landlock', 'detach-disk', 'dv', 'sdb', '--live']);
    await until(/device-removed' for domain 'dv': disk-sdb/);
    assert.match(out, /event 'device-added' for domain 'dv': disk-sdb/);
    assert.match(out, /event 'device-removed' for domain 'dv': disk-sdb/);
    assert.doesNotMatch(out, /device-added' for domain 'dv': disk-vda/, 'devices that were there are not news');
  });
});
