/**
 * The acceptance test of issue 14 parts 3 and 4 with Debian's virt-install, inside a network
 * namespace the test makes (svirt serve, the network's bridge, nft table and dnsmasq, and the
 * guest's QEMU all live there):
 * - `virt-install --import --disk size=1 --network network=default --graphics vnc
 *   --noautoconsole` makes a qcow2 volume in svirt's default pool; the guest image boots
 *   (its serial banner), gets a DHCP lease from the network (virsh net-dhcp-leases), and its
 *   VNC server answers; the volume is the guest's while it runs and root's after;
 *   `undefine --remove-all-storage` removes it.
 * - `--disk PATH` of an image outside any pool: virt-install makes a pool of its directory
 *   (pool-define, pool-start through svirt), and the guest boots from the same path.
 * TCG (`--virt-type qemu`), as every test guest here, under `dac,landlock`.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { owner, qemuAsRootSkip, scratch, type CliResult } from '../helpers.js';
import { guestImage, guestImageSkip, GUEST_BANNER, GUEST_CMDLINE, type GuestImage } from '../support/guest-image.js';
import { netns, netnsSkip, nsRun } from '../support/netns.js';
import { haveVirsh, startServer, uri, virsh, virshOk } from './support.js';

const VIRT_INSTALL = '/usr/bin/virt-install';
const skip =
  qemuAsRootSkip() ||
  netnsSkip() ||
  guestImageSkip() ||
  (haveVirsh() ? false : 'virsh (libvirt-clients) is not installed') ||
  (existsSync(VIRT_INSTALL) ? false : 'virt-install (virtinst) is not installed');
const BOOT_MS = 180_000;

const DEFAULT_NET = `<network>
  <name>default</name>
  <forward mode='nat'/>
  <bridge name='svbr-vi0'/>
  <ip address='10.79.0.1' prefix='24'>
    <dhcp><range start='10.79.0.10' end='10.79.0.30'/></dhcp>
  </ip>
</network>
`;

function virtInstall(socket: string, args: readonly string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: process.env['HOME'] ?? '/root' };
    delete env['LIBVIRT_DEFAULT_URI'];
    const child = spawn(VIRT_INSTALL, ['--connect', uri(socket), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

function common(image: GuestImage, name: string, serial: string): string[] {
  return [
    '--virt-type',
    'qemu',
    '--name',
    name,
    '--memory',
    '256',
    '--vcpus',
    '1',
    '--import',
    '--network',
    'network=default',
    '--graphics',
    'vnc',
    '--noautoconsole',
    '--serial',
    `file,path=${serial}`,
    '--boot',
    `kernel=${image.kernel},initrd=${image.initrd},kernel_args=${GUEST_CMDLINE}`,
    '--osinfo',
    'linux2022',
  ];
}

async function waitFor(what: string, ms: number, probe: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
  assert.fail(`${what} within ${ms / 1000} s`);
}

/** A serve in a namespace of its own, with the `default` network defined and started. */
async function serveWithDefaultNet(t: TestContext) {
  const dir = scratch(t);
  const ns = netns(t);
  const srv = await startServer(t, dir, 'dac,landlock', [], { netns: ns });
  const s = srv.socket;
  writeFileSync(join(dir, 'default.xml'), DEFAULT_NET);
  await virshOk(s, ['net-define', join(dir, 'default.xml')]);
  await virshOk(s, ['net-start', 'default']);
  return { dir, ns, srv, s };
}

describe('virt-install against svirt serve (namespace, real dnsmasq, TCG guest)', { skip }, () => {
  it(
    '--disk size=1 makes a volume in the default pool; the guest boots with a NIC (DHCP lease) and VNC',
    { timeout: BOOT_MS + 240_000 },
    async (t) => {
      const image = guestImage() as GuestImage;
      const { dir, ns, s } = await serveWithDefaultNet(t);
      await virshOk(s, ['net-autostart', 'default']);

      const serial = join(dir, 'vi1.serial');
      const r = await virtInstall(s, [...common(image, 'vi1', serial), '--disk', 'size=1']);
      assert.equal(r.code, 0, `virt-install: ${r.stdout}\n${r.stderr}`);
      t.after(async () => void (await virsh(s, ['destroy', 'vi1'])));

      const vol = join(dir, 'images', 'vi1.qcow2');
      assert.match(await virshOk(s, ['vol-list', 'default']), new RegExp(`vi1\\.qcow2\\s+${vol}`));
      assert.match(
        await virshOk(s, ['vol-dumpxml', 'vi1.qcow2', '--pool', 'default']),
        /<capacity unit='bytes'>1073741824<\/capacity>/,
      );
      assert.equal(readFileSync(vol).subarray(0, 4).toString('latin1'), 'QFI\xfb');
      const guestUid = owner(vol).uid;
      assert.notEqual(guestUid, 0, 'the volume is the guest uid while it runs');

      const ifaces = await virshOk(s, ['domiflist', 'vi1']);
      const mac = /network\s+default\s+\S+\s+(52:54:00(?::[0-9a-f]{2}){3})/.exec(ifaces)?.[1];
      assert.ok(mac, `a NIC on the default network: ${ifaces}`);
      assert.match(nsRun(ns, ['ip', '-o', 'link', 'show', 'master', 'svbr-vi0']), /vnet\d+/);

      const display = (await virshOk(s, ['vncdisplay', 'vi1'])).trim();
      const port = 5900 + Number(/:(\d+)$/.exec(display)?.[1] ?? NaN);
      assert.ok(Number.isInteger(port), `a VNC display: ${display}`);
      const banner = nsRun(ns, ['bash', '-c', `exec 3<>/dev/tcp/127.0.0.1/${port}; head -c 12 <&3`]);
      assert.match(banner, /^RFB 003\.00\d/, 'the VNC server answers');

      await waitFor(
        'the guest printed its banner',
        BOOT_MS,
        () => existsSync(serial) && readFileSync(serial, 'latin1').includes(GUEST_BANNER),
      );
      await waitFor('the guest got a DHCP lease', 60_000, async () =>
        new RegExp(`${mac}\\s+ipv4\\s+10\\.79\\.0\\.\\d+/24`).test(await virshOk(s, ['net-dhcp-leases', 'default'])),
      );

      await virshOk(s, ['destroy', 'vi1']);
      const back = owner(vol);
      assert.deepEqual([back.uid, back.mode & 0o777], [0, 0o600], 'root 0600 again after');
      assert.match(await virshOk(s, ['undefine', 'vi1', '--remove-all-storage']), /removed/);
      assert.equal(existsSync(vol), false, 'undefine --remove-all-storage removed the volume');
    },
  );

  it(
    '--disk PATH of an image outside any pool: its directory becomes a pool, the guest boots',
    { timeout: BOOT_MS + 240_000 },
    async (t) => {
      const image = guestImage() as GuestImage;
      const { dir, s } = await serveWithDefaultNet(t);
      const ext = join(dir, 'vmimages');
      mkdirSync(ext, { mode: 0o755 });
      const disk = join(ext, 'disk.img');
      writeFileSync(disk, Buffer.alloc(4 << 20));

      const serial = join(dir, 'vi2.serial');
      const r = await virtInstall(s, [...common(image, 'vi2', serial), '--disk', `path=${disk},format=raw`]);
      assert.equal(r.code, 0, `virt-install: ${r.stdout}\n${r.stderr}`);
      t.after(async () => void (await virsh(s, ['destroy', 'vi2'])));
      assert.match(
        await virshOk(s, ['pool-list', '--all']),
        /^\s*vmimages\s+active\s+yes\s*$/m,
        'virt-install made a pool of the directory',
      );
      assert.match(await virshOk(s, ['vol-list', 'vmimages']), new RegExp(`disk\\.img\\s+${disk}`));
      assert.notEqual(owner(disk).uid, 0, 'the image is the guest uid while it runs');
      await waitFor(
        'the guest printed its banner',
        BOOT_MS,
        () => existsSync(serial) && readFileSync(serial, 'latin1').includes(GUEST_BANNER),
      );
      await virshOk(s, ['destroy', 'vi2']);
      assert.equal(owner(disk).uid, 0, 'root again after');
      await virshOk(s, ['undefine', 'vi2']);
      assert.ok(existsSync(disk), 'a plain undefine keeps the image');
    },
  );
});
