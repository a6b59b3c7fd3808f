import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { domainXml, haveQemu, isRoot, makeImage, owner, readRunning, scratch, svirtOk, writeDomain } from '../helpers.js';
import { assertConfined, assertLandlockDenies } from './confinement.js';
import { haveVirsh, startServer, virsh, virshOk } from './support.js';

const skip = !haveQemu()
  ? 'qemu-system-x86_64 is not installed'
  : !isRoot()
    ? 'the dac driver needs root'
    : !haveVirsh()
      ? 'virsh is not installed (apt-get install libvirt-clients)'
      : false;
const ORIGINAL = { uid: 1000, gid: 1000, mode: 0o644 };
const STACK = ['--security-driver', 'dac,landlock'];

describe('svirt serve driven by Debian virsh (real QEMU, dac + landlock)', { skip, timeout: 300_000 }, () => {
  it('capabilities, define, start, dominfo, dumpxml, attach/detach-disk, suspend/resume, save/restore, shutdown, destroy, undefine', async (t) => {
    const dir = scratch(t);
    const srv = await startServer(t, dir);
    const s = srv.socket;
    const a = makeImage(join(dir, 'a.img'), 4, ORIGINAL, ORIGINAL.mode);
    const b = makeImage(join(dir, 'b.img'), 4, ORIGINAL, ORIGINAL.mode);

    const caps = await virshOk(s, ['capabilities']);
    assert.match(caps, /<secmodel>\s*<model>dac<\/model>\s*<doi>0<\/doi>/, 'a secmodel for dac');
    assert.match(caps, /<secmodel>\s*<model>landlock<\/model>\s*<doi>0<\/doi>/, 'a secmodel for landlock');

    assert.match(
      await virshOk(s, ['define', writeDomain(dir, 'rv', domainXml('rv', [{ path: a, dev: 'vda' }]))]),
      /Domain 'rv' defined/,
    );
    assert.match(await virshOk(s, ['list', '--all']), /^\s*-\s+rv\s+shut off\s*$/m);
    assert.equal((await virshOk(s, ['domid', 'rv'])).trim(), '-');

    assert.match(await virshOk(s, ['start', 'rv', '--paused']), /Domain 'rv' started/);
    let c = assertConfined(dir, 'rv');
    await assertLandlockDenies(dir, 'rv', c.uid);
    assert.equal(owner(a).uid, c.uid, 'the image belongs to the guest uid while it runs');
    const id = (await virshOk(s, ['domid', 'rv'])).trim();
    assert.match(id, /^\d+$/);
    assert.match(await virshOk(s, ['list']), new RegExp(`^\\s*${id}\\s+rv\\s+paused\\s*$`, 'm'));

    const info = await virshOk(s, ['dominfo', 'rv']);
    assert.match(info, new RegExp(`^Id:\\s+${id}$`, 'm'));
    assert.match(info, /^State:\s+paused$/m);
    assert.match(info, /^Persistent:\s+yes$/m);
    assert.match(info, /^Security model: dac$/m);
    assert.match(info, /^Security DOI:\s+0$/m);
    assert.match(info, new RegExp(`^Security label: \\+${c.uid}:\\+${c.uid} \\(enforcing\\)$`, 'm'));

    const xml = await virshOk(s, ['dumpxml', 'rv']);
    assert.match(
      xml,
      new RegExp(`<seclabel type='dynamic' model='dac' relabel='yes'>\\s*<label>\\+${c.uid}:\\+${c.uid}</label>`),
    );
    assert.match(xml, /<seclabel type='dynamic' model='landlock'/);
    const uuid = (await virshOk(s, ['domuuid', 'rv'])).trim();
    assert.ok(xml.includes(`<uuid>${uuid}</uuid>`), 'domuuid matches dumpxml');
    assert.doesNotMatch(
      await virshOk(s, ['dumpxml', '--inactive', 'rv']),
      /<label>/,
      'the inactive definition has no generated label',
    );

    // sd* on the always-present SCSI controller: unplug needs no guest OS (virtio PCI unplug would).
    assert.match(await virshOk(s, ['attach-disk', 'rv', b, 'sdb', '--targetbus', 'scsi']), /Disk attached successfully/);
    c = assertConfined(dir, 'rv');
    assert.equal(owner(b).uid, c.uid, 'the hot-plugged image belongs to the guest uid');
    assert.match(await virshOk(s, ['domblklist', 'rv']), /sdb\s+\S*b\.img/);
    assert.match(await virshOk(s, ['detach-disk', 'rv', 'sdb']), /Disk detached successfully/);
    assert.deepEqual(owner(b), ORIGINAL, 'the detached image has its original owner and mode back');
    assert.doesNotMatch(await virshOk(s, ['dumpxml', 'rv']), /sdb/);

    assert.match(await virshOk(s, ['resume', 'rv']), /Domain 'rv' resumed/);
    assert.equal((await virshOk(s, ['domstate', 'rv'])).trim(), 'running');
    assert.match(await virshOk(s, ['suspend', 'rv']), /Domain 'rv' suspended/);
    assert.equal((await virshOk(s, ['domstate', 'rv'])).trim(), 'paused');
    assert.match(await virshOk(s, ['resume', 'rv']), /Domain 'rv' resumed/);
    c = assertConfined(dir, 'rv');

    const saved = join(dir, 'rv.save');
    assert.match(await virshOk(s, ['save', 'rv', saved]), /Domain 'rv' saved to/);
    assert.equal((await virshOk(s, ['domstate', 'rv'])).trim(), 'shut off');
    assert.equal(existsSync(`/proc/${c.pid}`), false, 'the QEMU of the saved guest is gone');
    assert.deepEqual(owner(a), ORIGINAL, 'a saved guest gives its image back');
    assert.ok(existsSync(saved));
    assert.match(await virshOk(s, ['restore', saved]), /Domain restored from/);
    assert.equal((await virshOk(s, ['domstate', 'rv'])).trim(), 'running', 'restored in the state it was saved in');
    const restored = assertConfined(dir, 'rv');
    assert.notEqual(restored.pid, c.pid);
    await assertLandlockDenies(dir, 'rv', restored.uid);

    assert.match(await virshOk(s, ['shutdown', 'rv']), /Domain 'rv' is being shutdown/);
    assertConfined(dir, 'rv'); // no guest OS answers ACPI: it still runs, still confined
    assert.match(await virshOk(s, ['destroy', 'rv']), /Domain 'rv' destroyed/);
    assert.equal((await virshOk(s, ['domstate', 'rv'])).trim(), 'shut off');
    assert.equal(readRunning(dir).length, 0);
    assert.deepEqual(owner(a), ORIGINAL, 'destroy gives the image back');

    assert.match(await virshOk(s, ['undefine', 'rv']), /Domain 'rv' has been undefined/);
    assert.doesNotMatch(await virshOk(s, ['list', '--all']), /rv/);
  });

  it('reports libvirt errors virsh understands', async (t) => {
    const dir = scratch(t);
    const srv = await startServer(t, dir);
    const s = srv.socket;
    const a = makeImage(join(dir, 'a.img'));
    await virshOk(s, ['define', writeDomain(dir, 're', domainXml('re', [{ path: a, dev: 'vda' }]))]);

    const missing = await virsh(s, ['dominfo', 'nope']);
    assert.equal(missing.code, 1);
    // virsh tries id, uuid, then name, and drops the libvirt error in between (as against libvirtd).
    assert.match(missing.stderr, /failed to get domain 'nope'/);
    const invalid = await virsh(s, ['suspend', 're']);
    assert.equal(invalid.code, 1);
    assert.match(invalid.stderr, /Requested operation is not valid: domain 're' is not running/);
    const badXml = await virsh(s, ['define', writeDomain(dir, 'bad', '<domain type="qemu"><name>x</name>')]);
    assert.equal(badXml.code, 1);
    assert.match(badXml.stderr, /XML error/);
    // A procedure svirt does not implement: libvirt's "not supported", and the connection goes on.
    const unsupported = await virsh(s, ['nwfilter-list']);
    assert.equal(unsupported.code, 1);
    assert.match(unsupported.stderr, /this function is not supported by the connection driver: unknown procedure: \d+/);
    assert.match(await virshOk(s, ['list', '--all']), /re\s+shut off/);
  });

  it('shares one store with the CLI: each sees, confined, the guests the other started', async (t) => {
    const dir = scratch(t);
    const srv = await startServer(t, dir);
    const s = srv.socket;
    const a = makeImage(join(dir, 'a.img'), 4, ORIGINAL, ORIGINAL.mode);
    const b = makeImage(join(dir, 'b.img'), 4, ORIGINAL, ORIGINAL.mode);
    await svirtOk(dir, [...STACK, 'define', writeDomain(dir, 'bycli', domainXml('bycli', [{ path: a, dev: 'vda' }]))]);
    await svirtOk(dir, [...STACK, 'start', 'bycli', '--paused']);
    await virshOk(s, ['define', writeDomain(dir, 'byvirsh', domainXml('byvirsh', [{ path: b, dev: 'vda' }]))]);
    await virshOk(s, ['start', 'byvirsh', '--paused']);

    const cliGuest = assertConfined(dir, 'bycli');
    const virshGuest = assertConfined(dir, 'byvirsh');
    assert.notEqual(cliGuest.uid, virshGuest.uid, 'each guest has its own uid');

    const list = await virshOk(s, ['list', '--all']);
    assert.match(list, /^\s*\d+\s+bycli\s+paused\s*$/m, 'virsh sees the guest the CLI started');
    assert.match(
      await virshOk(s, ['dominfo', 'bycli']),
      new RegExp(`^Security label: \\+${cliGuest.uid}:\\+${cliGuest.uid} \\(enforcing\\)$`, 'm'),
    );
    const cliList = await svirtOk(dir, [...STACK, 'list', '--all']);
    assert.match(cliList, /byvirsh\s+paused/, 'the CLI sees the guest virsh started');
    assert.match(
      await svirtOk(dir, [...STACK, 'dominfo', 'byvirsh']),
      new RegExp(`^Security label: \\+${virshGuest.uid}:\\+${virshGuest.uid}$`, 'm'),
    );

    // Crossed stops: the CLI destroys virsh's guest, virsh destroys the CLI's.
    await svirtOk(dir, [...STACK, 'destroy', 'byvirsh']);
    await virshOk(s, ['destroy', 'bycli']);
    assert.match(await virshOk(s, ['list', '--all']), /^\s*-\s+byvirsh\s+shut off\s*$/m);
    assert.match(await svirtOk(dir, [...STACK, 'list', '--all']), /bycli\s+shut off/);
    assert.deepEqual(owner(a), ORIGINAL);
    assert.deepEqual(owner(b), ORIGINAL);
  });
});
