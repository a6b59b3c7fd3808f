/**
 * `virsh -c qemu+ssh://root@HOST/system` against svirt serve: a real sshd (its own config and
 * keys) inside a network namespace the test makes, plain virsh on the client side, libvirt's
 * own remote helpers on the server side — `virt-ssh-helper` (what virsh 9 runs when the
 * remote has it) to /run/libvirt/libvirt-sock, and `nc -U` for a `?socket=` URI — with svirt
 * serve listening where they look (`--socket /run/libvirt/libvirt-sock`, seen through sshd's
 * private /run). The define/start/dominfo/destroy sequence under `dac,landlock`.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { domainXml, haveQemu, isRoot, makeImage, svirt, writeDomain } from '../helpers.js';
import { remoteHost } from '../support/remote-host.js';
import { sshdSkip, startSshd } from '../support/sshd.js';
import { assertConfined } from './confinement.js';
import { haveVirsh, startServer } from './support.js';

const skip = !isRoot()
  ? 'network namespaces, mount namespaces and the dac driver need root'
  : !haveQemu()
    ? 'qemu-system-x86_64 is not installed'
    : !haveVirsh()
      ? 'virsh is not installed (apt-get install libvirt-clients)'
      : sshdSkip();

describe('virsh over qemu+ssh:// to svirt serve (sshd in a network namespace)', { skip, timeout: 300_000 }, () => {
  it('define, start, dominfo, destroy through virt-ssh-helper; the read-only socket through nc', async (t) => {
    const h = remoteHost(t, '10.79.0.2');
    const sshd = await startSshd(t, h.ns, h.addr, join(h.stateDir, 'ssh'));
    // Where libvirt's helpers look (/run/libvirt/libvirt-sock inside sshd's mount namespace).
    const socket = join(sshd.run, 'libvirt', 'libvirt-sock');
    const srv = await startServer(t, h.stateDir, 'dac,landlock', ['--socket', socket], { netns: h.ns });
    const base = `qemu+ssh://root@${h.addr}/system`;
    const uri = `${base}?command=${sshd.sshCommand}`;

    const disk = makeImage(join(h.stateDir, 'ssh.img'), 4, { uid: 0, gid: 0 }, 0o600);
    const xml = writeDomain(h.stateDir, 'sshg', domainXml('sshg', [{ path: disk, dev: 'vda' }]));
    let r = await h.virsh(uri, ['define', xml]);
    assert.equal(r.code, 0, `${r.stderr}\n${srv.stderr()}`);
    assert.match(r.stdout, /Domain 'sshg' defined/);
    r = await h.virsh(uri, ['start', 'sshg']);
    assert.equal(r.code, 0, r.stderr);
    const c = assertConfined(h.stateDir, 'sshg');
    r = await h.virsh(uri, ['dominfo', 'sshg']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^State:\s+running$/m);
    assert.match(r.stdout, new RegExp(`^Security label: \\+${c.uid}:\\+${c.uid} \\(enforcing\\)$`, 'm'));
    r = await h.virsh(uri, ['uri']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), uri, 'virsh is connected over ssh');

    // `?socket=` makes virsh run `nc -U PATH` on the remote: the read-only twin looks, never acts.
    if (existsSync('/usr/bin/nc')) {
      const ro = `${base}?command=${sshd.sshCommand}&socket=/run/libvirt/libvirt-sock-ro`;
      r = await h.virsh(ro, ['domstate', 'sshg']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /running/);
      r = await h.virsh(ro, ['destroy', 'sshg']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /operation forbidden: read only access prevents virDomainDestroy/);
    } else {
      t.diagnostic('nc (netcat-openbsd) is not installed: the ?socket= path is not tried');
    }

    r = await h.virsh(uri, ['destroy', 'sshg']);
    assert.equal(r.code, 0, r.stderr);
    r = await h.virsh(uri, ['dominfo', 'sshg']);
    assert.match(r.stdout, /^State:\s+shut off$/m);
    r = await h.virsh(uri, ['undefine', 'sshg']);
    assert.equal(r.code, 0, r.stderr);

    // The SSH user is the socket peer the kernel names: sshd ran the helper as root.
    const audit = await svirt(h.stateDir, ['audit', '--guest', 'sshg']);
    assert.equal(audit.code, 0, audit.stderr);
    assert.match(audit.stdout, /DomainCreate/);
    assert.match(audit.stdout, /socket-rw/);
  });
});
