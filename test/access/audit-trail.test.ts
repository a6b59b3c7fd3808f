/**
 * The audit trail holds every step of a guest's start, save, restore and stop, from the CLI
 * and from virsh over `svirt serve`, with the labels applied and restored; a denial by the
 * server is recorded with the caller's uid; the rows cannot be changed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import { qemuAsRootSkip, scratch, svirt, svirtOk, writeDomain } from '../helpers.js';
import { haveVirsh, startServer, virsh, virshOk } from '../remote/support.js';

const skip = qemuAsRootSkip() || (!haveVirsh() ? 'virsh is not installed (apt-get install libvirt-clients)' : false);

interface Row {
  op: string;
  guest?: string;
  uid: number;
  via: string;
  permission?: string;
  labels?: string[];
  allowed: boolean;
  result: string;
}

function tiny(name: string, extra = ''): string {
  return `<domain type='qemu'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os>${extra}<devices></devices></domain>\n`;
}

async function trail(dir: string, guest: string): Promise<Row[]> {
  return JSON.parse(await svirtOk(dir, ['audit', '--guest', guest, '--json'])) as Row[];
}

describe('the audit trail', { skip, timeout: 300_000 }, () => {
  it('records every step of start, save, restore and stop with the labels, from the CLI and over the socket', async (t) => {
    const dir = scratch(t);
    chmodSync(dir, 0o711);
    const saves = dir; // the restored guest's uid reaches the state file through the 0711 dir
    await svirtOk(dir, ['define', writeDomain(dir, 'aud1', tiny('aud1'))]);
    await svirtOk(dir, ['start', 'aud1']);
    await svirtOk(dir, ['save', 'aud1', join(saves, 'a.sav')]);
    await svirtOk(dir, ['restore', join(saves, 'a.sav')]);
    await svirtOk(dir, ['destroy', 'aud1']);
    const cli = await trail(dir, 'aud1');
    assert.deepEqual(
      cli.map((r) => `${r.op} ${r.result}`),
      [
        'define ok',
        'start ok',
        'label ok',
        'save ok',
        'restore-labels ok',
        'restore ok',
        'label ok',
        'destroy ok',
        'restore-labels ok',
      ],
    );
    for (const r of cli) {
      assert.equal(r.uid, 0);
      assert.equal(r.via, 'cli');
      assert.equal(r.allowed, true);
    }
    const labelled = cli.filter((r) => r.op === 'label' || r.op === 'restore-labels');
    for (const r of labelled)
      assert.ok(
        r.labels?.some((l) => /^dac=\d+$/.test(l)),
        `${r.op} names the dac label: ${JSON.stringify(r.labels)}`,
      );
    // The label applied at start is the one restored at save.
    assert.deepEqual(labelled[0]?.labels, labelled[1]?.labels);
    assert.equal(cli.find((r) => r.op === 'start')?.permission, 'domain:start');

    // The same steps over the socket, with the procedures' names; a failure is recorded with its message.
    const srv = await startServer(t, dir);
    await virshOk(srv.socket, ['start', 'aud1']);
    const bad = await virsh(srv.socket, ['save', 'aud1', join(dir, 'no-such-dir', 'x.sav')]);
    assert.notEqual(bad.code, 0, 'a save into a missing directory fails');
    await virshOk(srv.socket, ['save', 'aud1', join(saves, 'b.sav')]);
    await virshOk(srv.socket, ['restore', join(saves, 'b.sav')]);
    await virshOk(srv.socket, ['destroy', 'aud1']);
    const remote = (await trail(dir, 'aud1')).slice(cli.length);
    assert.deepEqual(
      remote.map((r) => `${r.op} ${r.result.replace(/^error: .*/, 'error')}`),
      [
        'DomainCreate ok',
        'label ok',
        'DomainSave error',
        'DomainSave ok',
        'restore-labels ok',
        'DomainRestore ok',
        'label ok',
        'DomainDestroy ok',
        'restore-labels ok',
      ],
    );
    assert.ok(remote.every((r) => r.via === 'socket-rw' && r.uid === 0));

    // A denial: uid 61010 has no rule, so the read-write socket refuses it at ConnectOpen, recorded.
    const denied = await svirt(dir, ['audit', '--json']);
    assert.equal(denied.code, 0);
    const nobody = await new Promise<{ code: number; stderr: string }>((resolve, reject) => {
      const argv = [
        '--reuid=61010',
        '--regid=61010',
        '--clear-groups',
        '--',
        '/usr/bin/virsh',
        '-c',
        `qemu+unix:///system?socket=${srv.socket}`,
        'list',
      ];
      const c = spawn('setpriv', argv, { env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent' } });
      let stderr = '';
      c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      c.on('error', reject);
      c.on('close', (code) => resolve({ code: code ?? 1, stderr }));
    });
    assert.notEqual(nobody.code, 0);
    assert.match(
      nobody.stderr,
      /Permission denied|access denied/,
      'without rules the read-write socket stays 0600: the kernel refuses the connect',
    );

    // Append-only, even for root through SQL.
    const db = new Database(join(dir, 'svirt.db'));
    t.after(() => db.close());
    assert.throws(() => db.prepare("UPDATE audit SET result = 'forged'").run(), /append-only/);
    assert.throws(() => db.prepare('DELETE FROM audit').run(), /append-only/);
  });
});
