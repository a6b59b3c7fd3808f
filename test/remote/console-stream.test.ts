/**
 * A guest's console through `svirt serve` (issue 14): python-libvirt opens it as libvirt's
 * stream (virDomainOpenConsole, what virsh console and virt-manager's serial console use) on
 * the real guest image under dac,landlock, runs a command in the guest's shell and reads its
 * answer; a second session is refused unless forced, and a forced one ends the first; a
 * read-only client gets no console. virsh reset restarts the guest's machine.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, scratch, svirtOk, waitFor, writeDomain } from '../helpers.js';
import { GUEST_BANNER, guestImage, guestImageSkip, ptyGuestXml, type GuestImage } from '../support/guest-image.js';
import { havePythonLibvirt, python, startServer, uri, virshOk } from './support.js';

const BOOT_MS = 180_000;
const skip = !isRoot()
  ? 'the dac driver needs root'
  : !havePythonLibvirt()
    ? '/usr/bin/python3 cannot import libvirt'
    : guestImageSkip();

/** Opens the console (FORCE when asked), sends a command, prints what came back until the marker, then finishes. */
const PY = `
import sys, time, libvirt
uri, mode = sys.argv[1], sys.argv[2]
c = libvirt.open(uri)
d = c.lookupByName('guest')
st = c.newStream(0)
try:
    d.openConsole(None, st, libvirt.VIR_DOMAIN_CONSOLE_FORCE if mode == 'force' else 0)
except libvirt.libvirtError as e:
    print('refused:', e.get_error_message(), flush=True)
    sys.exit(0)
if mode == 'hold':
    print('holding', flush=True)
    try:
        while True:
            if not st.recv(4096):
                break
        print('ended', flush=True)
    except libvirt.libvirtError as e:
        print('ended:', e.get_error_message(), flush=True)
    sys.exit(0)
st.send(b'\\r\\necho $((6*7))-from-serve\\r\\n')
out = b''
deadline = time.time() + 60
while time.time() < deadline and b'42-from-serve' not in out:
    out += st.recv(4096)
st.finish()
print('got', '42-from-serve' in out.decode('latin1'), flush=True)
`;

describe('svirt serve: the console as a libvirt stream', { skip, timeout: BOOT_MS + 180_000 }, () => {
  it('python-libvirt runs a command through DomainOpenConsole; sessions are one at a time, forced or refused', async (t) => {
    const image = guestImage() as GuestImage;
    const dir = scratch(t);
    const log = join(dir, 'serial.log');
    const xml = ptyGuestXml(image, 'guest', log);
    await svirtOk(dir, ['define', writeDomain(dir, 'guest', xml)]);
    const server = await startServer(t, dir);
    await svirtOk(dir, ['--security-driver', 'dac,landlock', 'start', 'guest']);
    const booted = await waitFor(() => existsSync(log) && readFileSync(log, 'latin1').includes(GUEST_BANNER), BOOT_MS, 500);
    assert.ok(booted, `no banner within ${BOOT_MS / 1000} s`);
    const script = join(dir, 'console.py');
    writeFileSync(script, PY);

    const first = await python(script, [uri(server.socket), 'run']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^got True$/m, first.stdout + first.stderr);

    // One session at a time: a holder, a plain second (refused), a forced one (ends the holder).
    const holder = python(script, [uri(server.socket), 'hold']);
    await new Promise((r) => setTimeout(r, 2000));
    const second = await python(script, [uri(server.socket), 'run']);
    assert.match(second.stdout, /^refused: .*in use by another session/m, second.stdout + second.stderr);
    const forced = await python(script, [uri(server.socket), 'force']);
    assert.match(forced.stdout, /^got True$/m, forced.stdout + forced.stderr);
    const held = await holder;
    assert.match(held.stdout, /^ended/m, `the first session ends when taken over: ${held.stdout}${held.stderr}`);

    const ro = await python(script, [`${uri(server.socket)}-ro`, 'run']);
    assert.ok(ro.code !== 0 || /refused: .*read only/.test(ro.stdout), `read-only: ${ro.stdout}${ro.stderr}`);

    // virsh reset (DomainReset): the machine restarts, the guest boots a second time.
    const banners = (): number => readFileSync(log, 'latin1').split(GUEST_BANNER).length - 1;
    assert.equal(banners(), 1);
    await virshOk(server.socket, ['reset', 'guest']);
    assert.ok(await waitFor(() => banners() === 2, BOOT_MS, 500), 'the guest booted again after the reset');
  });
});
