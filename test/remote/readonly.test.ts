import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { domainXml, haveQemu, isRoot, makeImage, readRunning, scratch, writeDomain, type CliResult } from '../helpers.js';
import { VirErr } from '../../src/remote/errors.js';
import { MessageStatus, Proc, STRING_MAX } from '../../src/remote/protocol.js';
import { assertConfined } from './confinement.js';
import { callFrame, RawClient } from './raw-client.js';
import { haveVirsh, startServer, uri, VIRSH, virsh, virshOk } from './support.js';

const skip = !haveQemu()
  ? 'qemu-system-x86_64 is not installed'
  : !isRoot()
    ? 'the dac driver needs root'
    : !haveVirsh()
      ? 'virsh is not installed (apt-get install libvirt-clients)'
      : false;
const NOBODY = 65534;

/** virsh as uid/gid 65534: an unprivileged local user. */
function virshAsNobody(socket: string, args: readonly string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: '/nonexistent' };
    const child = spawn(VIRSH, ['--readonly', '-c', uri(socket), ...args], {
      uid: NOBODY,
      gid: NOBODY,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

describe('svirt serve: the read-only socket and peer credentials', { skip, timeout: 300_000 }, () => {
  it("serves queries on PATH-ro, refuses every change there, and keeps each client's peer credentials", async (t) => {
    const dir = scratch(t);
    chmodSync(dir, 0o711); // an unprivileged user must reach the sockets (and nothing else in it)
    const srv = await startServer(t, dir, 'dac,landlock', ['--debug']);
    assert.equal(statSync(srv.socket).mode & 0o777, 0o600, 'the read-write socket is for its owner only');
    assert.equal(statSync(srv.roSocket).mode & 0o777, 0o666, 'the read-only socket is open to local users');

    const a = makeImage(join(dir, 'a.img'));
    const xmlFile = writeDomain(dir, 'ro1', domainXml('ro1', [{ path: a, dev: 'vda' }]));
    await virshOk(srv.socket, ['define', xmlFile]);
    await virshOk(srv.socket, ['start', 'ro1', '--paused']);
    const { uid, pid } = assertConfined(dir, 'ro1');

    const ro = srv.roSocket;
    assert.match(await virshOk(ro, ['list', '--all'], { readonly: true }), /ro1\s+paused/);
    assert.match(
      await virshOk(ro, ['dominfo', 'ro1'], { readonly: true }),
      new RegExp(`^Security label: \\+${uid}:\\+${uid} \\(enforcing\\)$`, 'm'),
    );
    assert.match(await virshOk(ro, ['dumpxml', 'ro1'], { readonly: true }), /<seclabel type='dynamic' model='dac'/);
    assert.match(await virshOk(ro, ['capabilities'], { readonly: true }), /<model>dac<\/model>/);

    // virsh without --readonly on the ro socket: the server itself refuses (libvirt's code and words).
    for (const args of [
      ['destroy', 'ro1'],
      ['suspend', 'ro1'],
      ['undefine', 'ro1'],
      ['define', xmlFile],
      ['save', 'ro1', join(dir, 'x.save')],
    ]) {
      const r = await virsh(ro, args);
      assert.equal(r.code, 1, `virsh ${args.join(' ')} on the ro socket must fail`);
      assert.match(
        r.stderr,
        /operation forbidden: read only access prevents virDomain\w+/,
        `virsh ${args.join(' ')}: ${r.stderr}`,
      );
    }
    const raw = await RawClient.open(ro);
    await raw.call(
      callFrame(Proc.ConnectOpen, 1, (w) => w.optional('qemu:///system', (x, v) => x.string(v, STRING_MAX)).uint(0)),
      1,
    );
    const denied = await raw.call(
      callFrame(Proc.DomainDefineXML, 2, (w) => w.string('<domain/>', STRING_MAX)),
      2,
    );
    assert.equal(denied.header.status, MessageStatus.ERROR);
    assert.equal(denied.error?.code, VirErr.OPERATION_DENIED);
    raw.close();
    assert.equal(readRunning(dir).find((r) => r.name === 'ro1')?.pid, pid, 'the guest was not touched');
    assert.match(await virshOk(srv.socket, ['domstate', 'ro1']), /paused/);

    // An unprivileged user: the ro socket answers, the rw socket is closed to it by its mode.
    const listed = await virshAsNobody(ro, ['list', '--all']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /ro1\s+paused/);
    const refused = await virshAsNobody(srv.socket, ['list']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /Permission denied/);
    assert.match(
      srv.stderr(),
      new RegExp(`client \\d+ \\(pid \\d+ uid ${NOBODY}\\) \\[ro\\]: connected`),
      'the server read the peer credentials (SO_PEERCRED)',
    );
    assert.match(srv.stderr(), /client \d+ \(pid \d+ uid 0\): connected/);

    await virshOk(srv.socket, ['destroy', 'ro1']);
    assert.equal(await srv.stop(), 0, 'SIGTERM ends the server cleanly');
    assert.equal(existsSync(srv.socket), false, 'the socket is removed on exit');
    assert.equal(existsSync(srv.roSocket), false, 'the ro socket is removed on exit');
  });
});
