/**
 * The machine's devices with real QEMU: q35 root ports and a virtio disk hot-plugged into
 * one, UEFI (OVMF) with a per-guest nvram, a loop device as a block disk, `<rng>` and the
 * balloon, the emulator chosen by arch. Guests start paused unless they must run firmware.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lchownSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { QmpClient } from '../../src/qemu/qmp-client.js';
import { makeImage, owner, qemuAsRootSkip, readRunning, scratch, svirt, svirtOk, writeDomain } from '../helpers.js';

const skip = qemuAsRootSkip();
const S = ['--security-driver', 'dac,landlock'];
const OVMF = '/usr/share/qemu/firmware/40-edk2-x86_64-secure-enrolled.json';

async function qmp<T>(dir: string, name: string, cmd: string, args?: Record<string, unknown>): Promise<T> {
  const row = readRunning(dir).find((r) => r.name === name);
  const q = await QmpClient.connect(join(dir, 'run', 'monitor', `${row?.uuid ?? ''}.sock`));
  try {
    return (await q.execute(cmd, args)) as T;
  } finally {
    q.close();
  }
}

/**
 * Every device of QEMU's qdev tree with the bus it sits on (`info qtree`: QEMU's own tree,
 * right even before firmware has numbered the buses, which query-pci needs).
 */
async function pciTree(dir: string, name: string): Promise<{ id: string; bus: string }[]> {
  const text = await qmp<string>(dir, name, 'human-monitor-command', { 'command-line': 'info qtree' });
  const out: { id: string; bus: string }[] = [];
  const buses: { indent: number; name: string }[] = [];
  for (const line of text.split('\n')) {
    const indent = line.length - line.trimStart().length;
    const bus = /^\s*bus: (\S+)/.exec(line);
    const dev = /^\s*dev: [^,]+, id "([^"]+)"/.exec(line);
    if (!bus && !dev) continue;
    while (buses.length > 0 && (buses[buses.length - 1]?.indent ?? 0) >= indent) buses.pop();
    if (bus?.[1]) buses.push({ indent, name: bus[1] });
    else if (dev?.[1]) out.push({ id: dev[1], bus: buses[buses.length - 1]?.name ?? '' });
  }
  return out;
}

function guest(name: string, os: string, devices: string, type = 'qemu'): string {
  return `<domain type='${type}'><name>${name}</name><memory unit='MiB'>128</memory><os>${os}</os><devices>${devices}</devices></domain>\n`;
}

const disk = (path: string, dev: string, type = 'file'): string =>
  `<disk type='${type}'><driver name='qemu' type='raw'/><source ${type === 'file' ? 'file' : 'dev'}='${path}'/><target dev='${dev}' bus='virtio'/></disk>`;

/** A link made by a user (uid), as one who owns a directory svirt reads could plant it. */
function chownLink(link: string, uid: number): void {
  lchownSync(link, uid, uid);
}

/** A loop device over a new file, detached when the test ends. */
function loopDevice(t: TestContext, file: string): string {
  const r = spawnSync('losetup', ['--find', '--show', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const dev = r.stdout.trim();
  t.after(() => void spawnSync('losetup', ['-d', dev]));
  return dev;
}

describe('q35: root ports, addresses and hot-plug (real QEMU)', { skip }, () => {
  it('puts every PCI device in its own root port, as the live XML says, and hot-plugs a virtio disk into a free one', async (t) => {
    const dir = scratch(t);
    const a = makeImage(join(dir, 'a.img'));
    const b = makeImage(join(dir, 'b.img'));
    const xml = guest(
      'q',
      "<type arch='x86_64' machine='q35'>hvm</type>",
      disk(a, 'vda') + "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>",
    );
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'q', xml)]);
    const defined = await svirtOk(dir, [...S, 'dumpxml', 'q', '--inactive']);
    assert.match(defined, /<controller type='pci' index='0' model='pcie-root'\/>/, 'written into the definition at define');
    await svirtOk(dir, [...S, 'start', 'q', '--paused']);
    const live = await svirtOk(dir, [...S, 'dumpxml', 'q']);
    const busOf = (re: RegExp, text: string): string => {
      const m = re.exec(text);
      assert.ok(m?.[1], `${String(re)} in\n${text}`);
      return `pci.${parseInt(m[1], 16)}`;
    };
    const vdaBus = busOf(/<target dev='vda' bus='virtio'\/>\s*<address type='pci' domain='0x0000' bus='(0x[0-9a-f]+)'/, live);
    const tree = await pciTree(dir, 'q');
    assert.equal(tree.find((d) => d.id === 'disk-vda')?.bus, vdaBus, 'QEMU put vda where the live XML says');
    assert.ok(tree.some((d) => d.id === 'rng0') && tree.some((d) => d.id === 'balloon0'));
    const ports = tree.filter((d) => d.id.startsWith('pci.'));
    assert.ok(ports.length >= 4, `root ports: ${ports.map((p) => p.id).join(' ')}`);

    await svirtOk(dir, [...S, 'attach-disk', 'q', b, 'vdb']);
    const after = await svirtOk(dir, [...S, 'dumpxml', 'q']);
    const vdbBus = busOf(/<target dev='vdb' bus='virtio'\/>\s*<address type='pci' domain='0x0000' bus='(0x[0-9a-f]+)'/, after);
    assert.equal((await pciTree(dir, 'q')).find((d) => d.id === 'disk-vdb')?.bus, vdbBus);
    assert.notEqual(vdbBus, 'pci.0', 'not on pcie.0, which has no hot-plug');
    assert.equal(
      owner(b).uid,
      statSync(join(dir, 'run', readRunning(dir)[0]?.uuid ?? '')).uid,
      "the plugged image is the guest's",
    );

    // Save and restore reproduce the tree with the plugged disk at its address.
    const saved = join(dir, 'q.save');
    await svirtOk(dir, [...S, 'save', 'q', saved]);
    await svirtOk(dir, [...S, 'restore', saved, '--paused']);
    const restored = await pciTree(dir, 'q');
    assert.equal(restored.find((d) => d.id === 'disk-vdb')?.bus, vdbBus);
  });

  it('a SCSI disk plugged into a guest without a SCSI controller brings one, recorded in the live XML', async (t) => {
    const dir = scratch(t);
    const a = makeImage(join(dir, 'a.img'));
    const c = makeImage(join(dir, 'c.img'));
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 's', guest('s', "<type machine='q35'>hvm</type>", disk(a, 'vda')))]);
    await svirtOk(dir, [...S, 'start', 's', '--paused']);
    assert.doesNotMatch(
      await svirtOk(dir, [...S, 'dumpxml', 's']),
      /type='scsi'/,
      'libvirt adds no SCSI controller without a SCSI disk',
    );
    await svirtOk(dir, [...S, 'attach-disk', 's', c, 'sdb']);
    assert.match(await svirtOk(dir, [...S, 'dumpxml', 's']), /<controller type='scsi' index='0' model='virtio-scsi'>/);
    assert.ok((await pciTree(dir, 's')).some((d) => d.id === 'scsi0'));
    await svirtOk(dir, [...S, 'detach-disk', 's', 'sdb']);
  });

  it('refuses a hot-plug when no root port is free, naming what to add', async (t) => {
    const dir = scratch(t);
    const imgs = [0, 1, 2].map((i) => makeImage(join(dir, `${i}.img`)));
    // Given root ports only: no free one is added beyond the one the definition leaves free.
    const ports =
      "<controller type='pci' index='0' model='pcie-root'/>" + "<controller type='pci' model='pcie-root-port'/>".repeat(6);
    const xml = guest(
      'f',
      "<type machine='q35'>hvm</type>",
      disk(imgs[0] ?? '', 'vda') + ports + "<controller type='usb' model='none'/><memballoon model='none'/>",
    );
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'f', xml)]);
    await svirtOk(dir, [...S, 'start', 'f', '--paused']);
    for (let i = 0; i < 5; i++) {
      await svirtOk(dir, [...S, 'attach-disk', 'f', makeImage(join(dir, `x${i}.img`)), `vd${'cdefg'[i] ?? ''}`]);
    }
    const r = await svirt(dir, [...S, 'attach-disk', 'f', imgs[1] ?? '', 'vdz']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /no free pcie-root-port for disk:vdz: .*add <controller type='pci' model='pcie-root-port'\/>/);
    assert.equal(owner(imgs[1] ?? '').uid, 0, 'a refused plug touches nothing');
  });
});

describe(
  'UEFI (OVMF) with a per-guest nvram (real QEMU)',
  { skip: skip || (existsSync(OVMF) ? false : 'no OVMF firmware descriptors (Debian package ovmf)') },
  () => {
    it("runs the firmware; the nvram is made from the template, the guest's while it runs and root's after; two guests, two nvram files", async (t) => {
      const dir = scratch(t);
      const os = "<type arch='x86_64' machine='q35'>hvm</type>";
      for (const n of ['u1', 'u2']) {
        const xml = guest(n, os, `<serial type='file'><source path='${join(dir, `${n}.serial`)}'/></serial>`).replace(
          '<os>',
          "<os firmware='efi'>",
        );
        await svirtOk(dir, [...S, 'define', writeDomain(dir, n, xml)]);
      }
      const defined = await svirtOk(dir, [...S, 'dumpxml', 'u1', '--inactive']);
      assert.match(
        defined,
        /<loader readonly='yes' secure='yes' type='pflash'>\/usr\/share\/OVMF\/OVMF_CODE_4M\.ms\.fd<\/loader>/,
      );
      const nv1 = join(dir, 'nvram', 'u1_VARS.fd');
      const nv2 = join(dir, 'nvram', 'u2_VARS.fd');
      assert.ok(defined.includes(`<nvram template='/usr/share/OVMF/OVMF_VARS_4M.ms.fd'>${nv1}</nvram>`), defined);
      await svirtOk(dir, [...S, 'start', 'u1']);
      await svirtOk(dir, [...S, 'start', 'u2']);
      const template = readFileSync('/usr/share/OVMF/OVMF_VARS_4M.ms.fd');
      assert.equal(statSync(nv1).size, template.length);
      const uid1 = owner(nv1).uid;
      const uid2 = owner(nv2).uid;
      assert.ok(uid1 !== 0 && uid2 !== 0 && uid1 !== uid2, `each guest owns its own nvram (${uid1}, ${uid2})`);
      assert.equal(owner(nv1).mode & 0o777, 0o600);
      const nodes = await qmp<{ 'node-name': string; ro: boolean; file: string }[]>(dir, 'u1', 'query-named-block-nodes');
      const flash = nodes
        .filter((n) => n['node-name'].startsWith('libvirt-pflash'))
        .map((n) => `${n['node-name']}:${n.ro ? 'ro' : 'rw'}`);
      assert.deepEqual(flash.sort(), [
        'libvirt-pflash0-format:ro',
        'libvirt-pflash0-storage:ro',
        'libvirt-pflash1-format:rw',
        'libvirt-pflash1-storage:rw',
      ]);
      assert.ok(
        nodes.every((n) => n.file.startsWith('/dev/fdset/')),
        'QEMU opened no firmware path of its own',
      );
      // OVMF is running: its first output reaches the serial port.
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && readFileSync(join(dir, 'u1.serial')).length === 0)
        await new Promise((r) => setTimeout(r, 200));
      assert.ok(readFileSync(join(dir, 'u1.serial')).length > 0, 'OVMF wrote to the serial port');
      assert.equal((await qmp<{ status: string }>(dir, 'u1', 'query-status')).status, 'running');
      await svirtOk(dir, [...S, 'destroy', 'u1']);
      await svirtOk(dir, [...S, 'destroy', 'u2']);
      assert.deepEqual([owner(nv1).uid, owner(nv2).uid], [0, 0], 'given back');

      // A clone gets its own copy of the variables, never the source's file.
      await svirtOk(dir, [...S, 'clone', 'u1', 'u3']);
      const nv3 = join(dir, 'nvram', 'u3_VARS.fd');
      assert.ok((await svirtOk(dir, [...S, 'dumpxml', 'u3', '--inactive'])).includes(`>${nv3}</nvram>`));
      assert.deepEqual(readFileSync(nv3), readFileSync(nv1));
      await svirtOk(dir, [...S, 'undefine', 'u3', '--nvram']);
      assert.ok(!existsSync(nv3) && existsSync(nv1));

      const refused = await svirt(dir, [...S, 'undefine', 'u1']);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /cannot undefine domain 'u1' with nvram/);
      await svirtOk(dir, [...S, 'undefine', 'u1', '--keep-nvram']);
      assert.ok(existsSync(nv1));
      await svirtOk(dir, [...S, 'undefine', 'u2', '--nvram']);
      assert.ok(!existsSync(nv2));
    });
  },
);

describe('hostile firmware paths', { skip: skip || (existsSync(OVMF) ? false : 'no OVMF (Debian package ovmf)') }, () => {
  const uefi = (dir: string, name: string, template: string, nvram: string): string =>
    guest(
      name,
      `<type machine='q35'>hvm</type><loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader><nvram template='${template}'>${nvram}</nvram>`,
      '',
    );

  it('a template that is a FIFO is refused before anything is made; a failed start leaves no nvram', async (t) => {
    const dir = scratch(t);
    const fifo = join(dir, 'vars.fifo');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const nvram = join(dir, 'f_VARS.fd');
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'f', uefi(dir, 'f', fifo, nvram))]);
    const r = await svirt(dir, [...S, 'start', 'f']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /nvram template .* is not a regular file/);
    assert.ok(!existsSync(nvram), 'nothing left behind');
  });

  it("an nvram path that is a symlink to root's file is refused and the file keeps its owner", async (t) => {
    const dir = scratch(t);
    const victim = makeImage(join(dir, 'victim.bin'), 1, { uid: 0, gid: 0 }, 0o600);
    const link = join(dir, 'l_VARS.fd');
    symlinkSync(victim, link);
    chownLink(link, 1000);
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'l', uefi(dir, 'l', '/usr/share/OVMF/OVMF_VARS_4M.fd', link))]);
    const r = await svirt(dir, [...S, 'start', 'l']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /symbolic link/);
    assert.deepEqual(owner(victim), { uid: 0, gid: 0, mode: 0o600 });
  });
});

describe('block devices (loop devices, real QEMU)', { skip }, () => {
  it('a <disk type=block> opens as host_device over the fd; the node is the guest’s while it runs, root’s after', async (t) => {
    const dir = scratch(t);
    const dev = loopDevice(t, makeImage(join(dir, 'backing-file.img'), 8));
    const before = owner(dev);
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'blk', guest('blk', '<type>hvm</type>', disk(dev, 'vda', 'block')))]);
    await svirtOk(dir, [...S, 'start', 'blk', '--paused']);
    const nodes = await qmp<{ drv: string; file: string }[]>(dir, 'blk', 'query-named-block-nodes');
    assert.ok(
      nodes.some((n) => n.drv === 'host_device' && n.file.startsWith('/dev/fdset/')),
      JSON.stringify(nodes),
    );
    assert.notEqual(owner(dev).uid, 0, 'owned by the guest uid while it runs');
    await svirtOk(dir, [...S, 'destroy', 'blk']);
    assert.deepEqual(owner(dev), before, 'owner and mode given back');
  });

  it('a loop device as the raw base of a qcow2 chain', async (t) => {
    const dir = scratch(t);
    const dev = loopDevice(t, makeImage(join(dir, 'base.img'), 8));
    const top = join(dir, 'top.qcow2');
    const r = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', dev, top], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const chain = `<disk type='file'><driver name='qemu' type='qcow2'/><source file='${top}'/><backingStore type='block'><format type='raw'/><source dev='${dev}'/><backingStore/></backingStore><target dev='vda'/></disk>`;
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'chain', guest('chain', '<type>hvm</type>', chain))]);
    await svirtOk(dir, [...S, 'start', 'chain', '--paused']);
    const nodes = await qmp<{ drv: string; 'node-name': string }[]>(dir, 'chain', 'query-named-block-nodes');
    assert.ok(
      nodes.some((n) => n['node-name'] === 'vda-file0' && n.drv === 'host_device'),
      JSON.stringify(nodes),
    );
    assert.equal(owner(dev).uid, 0, 'a read-only backing layer keeps its owner');
  });
});

describe('architectures and emulators', { skip }, () => {
  it('an arch whose QEMU is not installed is refused at define, naming the Debian package', async (t) => {
    if (existsSync('/usr/bin/qemu-system-aarch64')) return t.skip('qemu-system-aarch64 is installed here');
    const dir = scratch(t);
    const r = await svirt(dir, [
      ...S,
      'define',
      writeDomain(dir, 'arm', guest('arm', "<type arch='aarch64' machine='virt'>hvm</type>", '')),
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /qemu-system-aarch64 is not installed \(Debian package qemu-system-arm\)/);
  });

  it('i686 runs qemu-system-i386, and the landlock ruleset names that binary', async (t) => {
    if (!existsSync('/usr/bin/qemu-system-i386')) return t.skip('qemu-system-i386 is not installed');
    // Debian's /usr/bin/qemu-system-i386 is a wrapper script: svirt runs the binary it execs.
    const script = readFileSync('/usr/bin/qemu-system-i386').subarray(0, 2).toString() === '#!';
    const bin = script ? '/usr/libexec/qemu-system-i386' : '/usr/bin/qemu-system-i386';
    const dir = scratch(t);
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'old', guest('old', "<type arch='i686' machine='pc'>hvm</type>", ''))]);
    await svirtOk(dir, [...S, 'start', 'old', '--paused']);
    const pid = readRunning(dir)[0]?.pid ?? 0;
    assert.equal(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0], bin);
    const profile = await svirtOk(dir, [...S, 'profile', 'old', '--driver', 'landlock']);
    assert.ok(profile.includes(`allow ${bin}: read_file execute`), profile);
    assert.doesNotMatch(profile, /qemu-system-x86_64/);
  });

  it('capabilities lists each installed emulator with its machine types', async (t) => {
    const dir = scratch(t);
    const caps = await svirtOk(dir, ['capabilities']);
    assert.match(
      caps,
      /<arch name='x86_64'>\n\s+<wordsize>64<\/wordsize>\n\s+<emulator>\/usr\/bin\/qemu-system-x86_64<\/emulator>/,
    );
    assert.match(caps, /<machine canonical='pc-q35-[0-9.]+'>q35<\/machine>/);
  });
});
