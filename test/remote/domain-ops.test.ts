/**
 * The everyday domain operations of issue 14 (parts 6 and 7) through `svirt serve`, with the
 * real virsh and python-libvirt, on guests confined under dac,landlock: qemu-monitor-command
 * (checked, tainting), screenshots as a stream, memory and vCPUs, a CD-ROM's medium,
 * metadata and titles, send-key, autostart (and the boot unit), managedsave, domrename, and
 * save over an existing file. The guests need no OS (started paused or without one).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { domainXml, makeImage, readRunning, scratch, svirt, svirtOk, writeDomain } from '../helpers.js';
import { havePythonLibvirt, qemuDacVirshSkip, python, startServer, uri, virsh, virshOk } from './support.js';

const skip = qemuDacVirshSkip();

const DISPLAY = `
    <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>
    <video><model type='cirrus'/></video>`;

function guestXml(dir: string, name: string, extraDevices = ''): string {
  const img = makeImage(join(dir, `${name}.img`), 4);
  return domainXml(name, [{ path: img, dev: 'vda' }]).replace('  </devices>', `${extraDevices}\n  </devices>`);
}

function qemuPid(dir: string, name: string): number {
  const pid = readRunning(dir).find((r) => r.name === name)?.pid;
  assert.ok(pid, `${name} runs`);
  return pid;
}

describe('svirt serve: domain operations', { skip, timeout: 300_000 }, () => {
  it('qemu-monitor-command: queries pass, path-opening commands are refused, the run is tainted and audited', async (t) => {
    const dir = scratch(t);
    const s = (await startServer(t, dir)).socket;
    await virshOk(s, ['define', writeDomain(dir, 'mon', guestXml(dir, 'mon'))]);
    await virshOk(s, ['start', 'mon', '--paused']);
    const status = JSON.parse(await virshOk(s, ['qemu-monitor-command', 'mon', '{"execute":"query-status"}'])) as {
      return: { status: string };
    };
    assert.equal(status.return.status, 'prelaunch');
    assert.match(await virshOk(s, ['qemu-monitor-command', 'mon', '--hmp', 'info status']), /VM status: paused/);
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'secret');
    for (const [cmd, hmp, why] of [
      [
        `{"execute":"blockdev-add","arguments":{"driver":"file","filename":"${victim}","node-name":"x"}}`,
        false,
        /blockdev-add' is refused/,
      ],
      [
        `{"execute":"migrate","arguments":{"uri":"exec:touch ${dir}/pwned"}}`,
        false,
        /'migrate' is refused: its URI can be 'exec:'/,
      ],
      [
        `{"execute":"human-monitor-command","arguments":{"command-line":"drive_add 0 file=${victim}"}}`,
        false,
        /HMP command 'drive_add'/,
      ],
      [`chardev-add file,id=c,path=${dir}/pwned`, true, /HMP command 'chardev-add'/],
      [`{"execute":"query-status","exec-oob":"migrate"}`, false, /unexpected member 'exec-oob'/],
      ['info status\nmigrate exec:id', true, /one line without control characters/],
      [
        `{"execute":"dump-guest-memory","arguments":{"paging":false,"protocol":"file:${dir}/pwned"}}`,
        false,
        /writes a host file/,
      ],
    ] as const) {
      const r = await virsh(s, ['qemu-monitor-command', 'mon', ...(hmp ? ['--hmp'] : []), cmd]);
      assert.notEqual(r.code, 0, cmd);
      assert.match(r.stderr, why);
    }
    assert.ok(!existsSync(join(dir, 'pwned')), 'no refused command ran');
    const ro = await virsh(s, ['qemu-monitor-command', 'mon', '{"execute":"query-status"}'], { readonly: true });
    assert.match(ro.stderr, /read only access prevents virDomainQemuMonitorCommand/);
    assert.match(await virshOk(s, ['dominfo', 'mon']), /^Messages:\s+tainted: custom monitor control commands issued$/m);
    const trail = JSON.parse(await svirtOk(dir, ['audit', '--guest', 'mon', '--json'])) as { op: string; result: string }[];
    assert.ok(trail.some((r) => r.op === 'QemuDomainMonitorCommand' && r.result === 'ok'));
    assert.ok(trail.some((r) => r.op === 'QemuDomainMonitorCommand' && /blockdev-add' is refused/.test(r.result)));
    // A new run starts clean, as libvirt's does.
    await virshOk(s, ['destroy', 'mon']);
    await virshOk(s, ['start', 'mon', '--paused']);
    assert.doesNotMatch(await virshOk(s, ['dominfo', 'mon']), /tainted/);
    // The CLI verb takes the same path.
    const cli = await svirt(dir, ['qemu-monitor-command', 'mon', '{"execute":"query-name"}']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(await virshOk(s, ['dominfo', 'mon']), /tainted/);
  });

  it('DomainScreenshot streams a PNG; memory, vCPUs, metadata and titles; send-key', async (t) => {
    const dir = scratch(t);
    const s = (await startServer(t, dir)).socket;
    await virshOk(s, ['define', writeDomain(dir, 'ops', guestXml(dir, 'ops', DISPLAY))]);
    await virshOk(s, ['start', 'ops']);
    const shot = join(dir, 'shot.png');
    assert.match(await virshOk(s, ['screenshot', 'ops', shot]), /image\/png/);
    assert.deepEqual([...readFileSync(shot).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.match((await virsh(s, ['screenshot', 'ops', join(dir, 'ro.png')], { readonly: true })).stderr, /read only access/);

    // memory: the balloon live (QEMU takes the target), the definition with --config
    await virshOk(s, ['setmem', 'ops', '48M', '--live']);
    assert.match((await virsh(s, ['setmem', 'ops', '128M', '--live'])).stderr, /higher than max memory/);
    await virshOk(s, ['setmem', 'ops', '32M', '--config']);
    await virshOk(s, ['setmaxmem', 'ops', '96M', '--config']);
    const inactive = await virshOk(s, ['dumpxml', '--inactive', 'ops']);
    assert.match(inactive, /<memory unit='KiB'>98304<\/memory>/);
    assert.match(inactive, /<currentMemory unit='KiB'>32768<\/currentMemory>/);
    assert.match((await virsh(s, ['setmaxmem', 'ops', '96M', '--live'])).stderr, /maximum memory on an active domain/);
    // vCPUs: the definition's maximum and current count; live, never past the running maximum
    // (hot-plug into a booted guest: test/e2e/vcpu-hotplug.test.ts)
    assert.match((await virsh(s, ['setvcpus', 'ops', '2', '--config'])).stderr, /greater than max allowable vcpus .* 2 > 1/);
    await virshOk(s, ['setvcpus', 'ops', '2', '--config', '--maximum']);
    assert.match(await virshOk(s, ['vcpucount', 'ops']), /maximum\s+config\s+2[\s\S]*current\s+config\s+1/);
    await virshOk(s, ['setvcpus', 'ops', '2', '--config']);
    assert.match(await virshOk(s, ['vcpucount', 'ops']), /current\s+config\s+2/);
    assert.match(
      (await virsh(s, ['setvcpus', 'ops', '2', '--live'])).stderr,
      /greater than max allowable vcpus for the live domain: 2 > 1/,
    );

    // metadata in its namespace, and the title
    await virshOk(s, [
      'metadata',
      'ops',
      'http://example.org/app/',
      '--key',
      'app',
      '--set',
      '<cfg><owner>ops-team</owner></cfg>',
      '--config',
    ]);
    const meta = await virshOk(s, ['metadata', 'ops', 'http://example.org/app/', '--config']);
    assert.match(meta, /<cfg xmlns='http:\/\/example.org\/app\/'>\s*<owner>ops-team<\/owner>\s*<\/cfg>/);
    assert.match(await virshOk(s, ['dumpxml', '--inactive', 'ops']), /<app:cfg xmlns:app='http:\/\/example.org\/app\/'>/);
    assert.match((await virsh(s, ['metadata', 'ops', 'http://other.example/'])).stderr, /metadata not found/);
    await virshOk(s, ['desc', 'ops', '--title', '--live', 'Build box']);
    assert.equal((await virshOk(s, ['desc', 'ops', '--title'])).trim(), 'Build box');
    await virshOk(s, ['metadata', 'ops', 'http://example.org/app/', '--remove', '--config']);
    assert.doesNotMatch(await virshOk(s, ['dumpxml', '--inactive', 'ops']), /<metadata>/);

    // keys: linux codes go to QEMU as its numbers; an unknown code set is refused by name
    await virshOk(s, ['send-key', 'ops', 'KEY_LEFTCTRL', 'KEY_LEFTALT', 'KEY_DELETE']);
    await virshOk(s, ['send-key', 'ops', '--codeset', 'xt', '0x1c']);
    assert.match((await virsh(s, ['send-key', 'ops', '--codeset', 'usb', '4'])).stderr, /usb code set is not supported/);

    if (havePythonLibvirt()) {
      const script = join(dir, 'ops.py');
      writeFileSync(
        script,
        [
          'import sys, libvirt',
          'c = libvirt.open(sys.argv[1]); d = c.lookupByName("ops")',
          'st = c.newStream(0); mime = d.screenshot(st, 0, 0); data = b""',
          'while True:',
          '    x = st.recv(65536)',
          '    if not x: break',
          '    data += x',
          'st.finish()',
          'print(mime, len(data), data[:4] == b"\\x89PNG", d.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_CONFIG), d.autostart())',
        ].join('\n'),
      );
      const r = await python(script, [uri(s)]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^image\/png \d+ True 2 0$/m);
    }
  });

  it('change-media and update-device: the new medium goes through the entrypoint check, the old one is given back', async (t) => {
    const dir = scratch(t);
    const s = (await startServer(t, dir)).socket;
    const cdrom = `
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><target dev='hdc' bus='ide'/><readonly/></disk>`;
    await virshOk(s, ['define', writeDomain(dir, 'cd', guestXml(dir, 'cd', cdrom))]);
    await virshOk(s, ['start', 'cd', '--paused']);
    // A read-only medium reaches QEMU as an fd; under dac it keeps its owner (only writable disks are chowned).
    const a = makeImage(join(dir, 'a.iso'), 1);
    const b = makeImage(join(dir, 'b.iso'), 1);
    await virshOk(s, ['change-media', 'cd', 'hdc', a, '--insert']);
    assert.match(await virshOk(s, ['domblklist', 'cd']), new RegExp(`hdc\\s+${a}`));
    assert.equal(statSync(a).uid, 0, 'a read-only medium keeps its owner');
    // virsh update-device: the whole <disk> with its new source (DomainUpdateDeviceFlags)
    const upd = join(dir, 'cd-b.xml');
    writeFileSync(
      upd,
      `<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='${b}'/><target dev='hdc' bus='ide'/><readonly/></disk>`,
    );
    await virshOk(s, ['update-device', 'cd', upd, '--live']);
    assert.match(await virshOk(s, ['domblklist', 'cd']), new RegExp(`hdc\\s+${b}`));
    assert.deepEqual([statSync(a).uid, statSync(a).mode & 0o777], [0, 0o644], 'the old medium is as it was');
    const notCd = join(dir, 'disk.xml');
    writeFileSync(
      notCd,
      `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${a}'/><target dev='vda' bus='virtio'/></disk>`,
    );
    assert.match((await virsh(s, ['update-device', 'cd', notCd])).stderr, /only the medium of a CD-ROM or floppy/);
    // A medium the entrypoint rules refuse is refused before anything is labelled.
    const refused = await virsh(s, ['change-media', 'cd', 'hdc', '/etc/shadow', '--update']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /refusing cdrom "\/etc\/shadow"|fixed floor/);
    assert.match(await virshOk(s, ['domblklist', 'cd']), new RegExp(`hdc\\s+${b}`), 'a refused medium leaves the old one in');
    await virshOk(s, ['change-media', 'cd', 'hdc', '--eject']);
    assert.match(await virshOk(s, ['domblklist', 'cd']), /hdc\s+-/);
    assert.deepEqual([statSync(b).uid, statSync(b).mode & 0o777], [0, 0o644]);
  });

  it('autostart, the boot unit, managedsave and start from it, domrename, save over an existing file', async (t) => {
    const dir = scratch(t);
    const s = (await startServer(t, dir)).socket;
    await virshOk(s, ['define', writeDomain(dir, 'ms', guestXml(dir, 'ms'))]);
    await virshOk(s, ['autostart', 'ms']);
    assert.match(await virshOk(s, ['dominfo', 'ms']), /^Autostart:\s+enable$/m);
    // virsh list's filters (ConnectListAllDomains' flags) see the mark
    assert.match(await virshOk(s, ['list', '--all', '--autostart', '--name']), /^ms$/m);
    assert.doesNotMatch(await virshOk(s, ['list', '--all', '--no-autostart', '--name']), /^ms$/m);
    // what the boot unit runs
    assert.match(await svirtOk(dir, ['--security-driver', 'dac,landlock', 'autostart-all']), /domain 'ms': started/);
    assert.match(await svirtOk(dir, ['--security-driver', 'dac,landlock', 'autostart-all']), /domain 'ms': running/);
    const unit = new URL('../../../policy/systemd/svirt-autostart.service', import.meta.url).pathname;
    assert.match(readFileSync(unit, 'utf8'), /^ExecStart=\/usr\/bin\/env svirt autostart-all$/m);
    if (existsSync('/usr/bin/systemd-analyze')) {
      const v = spawnSync('/usr/bin/systemd-analyze', ['verify', unit], { encoding: 'utf8', cwd: dir });
      assert.equal(v.status, 0, v.stderr);
    }

    // managedsave: svirt's own file, the guest's labels given back, start restores it and drops it
    const pid = qemuPid(dir, 'ms');
    await virshOk(s, ['managedsave', 'ms']);
    assert.ok(!existsSync(`/proc/${pid}/stat`) || readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'));
    assert.match(await virshOk(s, ['dominfo', 'ms']), /^Managed save:\s+yes$/m);
    assert.match(await virshOk(s, ['list', '--all', '--with-managed-save', '--name']), /^ms$/m);
    assert.doesNotMatch(await virshOk(s, ['list', '--all', '--without-managed-save', '--name']), /^ms$/m);
    const saved = readdirSync(join(dir, 'managed-save'));
    assert.equal(saved.length, 1);
    const file = join(dir, 'managed-save', saved[0] as string);
    assert.deepEqual([statSync(file).uid, statSync(file).mode & 0o777], [0, 0o600], "the file is svirt's again");
    assert.match((await virsh(s, ['undefine', 'ms'])).stderr, /managed save image exists/);
    await virshOk(s, ['start', 'ms']);
    assert.ok(!existsSync(file), 'the managed save is gone once the guest runs from it');
    assert.match(await virshOk(s, ['dominfo', 'ms']), /^Managed save:\s+no$/m);
    // --force-boot drops a managed save and boots afresh
    await virshOk(s, ['managedsave', 'ms']);
    await virshOk(s, ['start', 'ms', '--force-boot']);
    assert.equal(readdirSync(join(dir, 'managed-save')).length, 0);

    // domrename: refused while the guest runs, then renamed with its autostart mark
    assert.match((await virsh(s, ['domrename', 'ms', 'ms2'])).stderr, /cannot rename active domain/);
    await virshOk(s, ['destroy', 'ms']);
    await virshOk(s, ['domrename', 'ms', 'ms2']);
    assert.match(await virshOk(s, ['list', '--all', '--name']), /^ms2$/m);
    assert.match(await virshOk(s, ['dominfo', 'ms2']), /^Autostart:\s+enable$/m);
    assert.match((await virsh(s, ['domrename', 'ms2', 'bad/name'])).stderr, /contains "\/"/);

    // save over an existing file replaces it whole; a link there is refused, its target untouched
    await virshOk(s, ['start', 'ms2']);
    const over = join(dir, 'over.save');
    writeFileSync(over, 'an older save');
    await virshOk(s, ['save', 'ms2', over]);
    assert.ok(statSync(over).size > 65536);
    await virshOk(s, ['restore', over]);
    const target = join(dir, 'target');
    writeFileSync(target, 'not yours');
    const link = join(dir, 'link.save');
    symlinkSync(target, link);
    const r = await virsh(s, ['save', 'ms2', link]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /exists and is not a regular file/);
    assert.equal(readFileSync(target, 'utf8'), 'not yours');
    assert.ok(lstatSync(link).isSymbolicLink());
    // undefine drops the autostart mark: a guest defined again with that uuid starts clean
    const uuid = (await virshOk(s, ['domuuid', 'ms2'])).trim();
    await virshOk(s, ['destroy', 'ms2']);
    await virshOk(s, ['undefine', 'ms2']);
    const again = readFileSync(join(dir, 'ms.xml'), 'utf8').replace('<name>ms</name>', `<name>ms3</name><uuid>${uuid}</uuid>`);
    await virshOk(s, ['define', writeDomain(dir, 'ms3', again)]);
    assert.match(await virshOk(s, ['dominfo', 'ms3']), /^Autostart:\s+disable$/m);
  });
});
