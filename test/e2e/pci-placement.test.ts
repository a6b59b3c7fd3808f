/**
 * Every PCI device at the address its live XML names, with real QEMU on pc and q35: a guest
 * with a video, a virtio input, a guest-agent channel (virtio-serial), an rng, the balloon,
 * a shared folder (vhost-user-fs), qemu-xhci, SCSI and SATA controllers runs its firmware
 * (SeaBIOS numbers the buses), then a virtio disk and a NIC on a bridge hot-plug into it. QEMU's own `query-pci` must show every device
 * where the live XML says and no two in one slot. The NIC's tap lives in a namespace the test
 * makes; the guest never boots an OS (no image needed).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseDomainXml } from '../../src/domain/index.js';
import type { PciAddress } from '../../src/domain/domain-def.js';
import { findVirtiofsd } from '../../src/lifecycle/filesystems.js';
import { QmpClient } from '../../src/qemu/qmp-client.js';
import { makeImage, qemuAsRootSkip, readRunning, scratch, writeDomain, QEMU } from '../helpers.js';
import { netns, netnsSkip, nsRun, svirtInOk } from '../support/netns.js';

const skip = qemuAsRootSkip() || netnsSkip() || (findVirtiofsd() === undefined ? 'no virtiofsd installed' : false);
const S = ['--security-driver', 'dac,landlock'];

interface QueryPciDevice {
  bus: number;
  slot: number;
  function: number;
  qdev_id: string;
  pci_bridge?: { bus: { secondary: number }; devices?: QueryPciDevice[] };
}

/** Where QEMU put each device: `parent/slot.function`, the parent named by its qdev id (the root bus: `root`). */
async function queryPci(monitor: string): Promise<Map<string, string>> {
  const q = await QmpClient.connect(monitor);
  try {
    const buses = (await q.execute('query-pci')) as { bus: number; devices: QueryPciDevice[] }[];
    const out = new Map<string, string>();
    const walk = (devices: readonly QueryPciDevice[], parent: string): void => {
      for (const d of devices) {
        const id = d.qdev_id === '' ? `(built-in ${d.slot}.${d.function})` : d.qdev_id;
        out.set(id, `${parent}/${d.slot}.${d.function}`);
        if (d.pci_bridge?.devices) walk(d.pci_bridge.devices, id);
      }
    };
    for (const b of buses) walk(b.devices, 'root');
    return out;
  } finally {
    q.close();
  }
}

/** The same notation for an address of the live XML: bus N is the controller with index N (QEMU id pci.N). */
const place = (a: PciAddress | undefined): string | undefined =>
  a && `${a.bus === 0 ? 'root' : `pci.${a.bus}`}/${a.slot}.${a.function}`;

/** Polls `query-pci` until `ok` holds (the firmware has numbered the buses), within `ms`. */
async function pciWhen(monitor: string, ok: (m: Map<string, string>) => boolean, ms: number): Promise<Map<string, string>> {
  const deadline = Date.now() + ms;
  let m = await queryPci(monitor);
  while (!ok(m) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    m = await queryPci(monitor);
  }
  return m;
}

function guestXml(machine: string, disk: string, scsi: string, share: string): string {
  return `<domain type='qemu'>
  <name>pci</name>
  <memory unit='MiB'>128</memory>
  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>
  <os><type arch='x86_64' machine='${machine}'>hvm</type></os>
  <devices>
    <emulator>${QEMU}</emulator>
    <disk type='file'><driver name='qemu' type='raw'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><target dev='sdb' bus='sata'/><readonly/></disk>
    <disk type='file'><driver name='qemu' type='raw'/><source file='${scsi}'/><target dev='sdc' bus='scsi'/></disk>
    <controller type='usb' model='qemu-xhci'/>
    <filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='${share}'/><target dir='share'/></filesystem>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <video><model type='vga'/></video>
    <input type='tablet' bus='virtio'/>
    <input type='mouse' bus='usb'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
</domain>
`;
}

describe('PCI placement of every device, and hot-plug beside them (real QEMU, query-pci)', { skip }, () => {
  for (const machine of ['pc', 'q35'])
    it(`${machine}: every device sits where the live XML says, a disk and a NIC hot-plug, no slot is shared`, async (t) => {
      const dir = scratch(t);
      const ns = netns(t);
      nsRun(ns, ['ip', 'link', 'add', 'br-pci', 'type', 'bridge']);
      nsRun(ns, ['ip', 'link', 'set', 'br-pci', 'up']);
      const share = join(dir, 'share');
      mkdirSync(share);
      const vda = makeImage(join(dir, 'vda.img'));
      const vdb = makeImage(join(dir, 'vdb.img'));
      const sdc = makeImage(join(dir, 'sdc.img'));
      await svirtInOk(ns, dir, [...S, 'define', writeDomain(dir, 'pci', guestXml(machine, vda, sdc, share))]);
      await svirtInOk(ns, dir, [...S, 'start', 'pci']);
      const rec = readRunning(dir).find((r) => r.name === 'pci');
      assert.ok(rec);
      const monitor = join(dir, 'run', 'monitor', `${rec.uuid}.sock`);

      const check = async (expect: readonly string[]): Promise<void> => {
        const live = parseDomainXml(await svirtInOk(ns, dir, ['dumpxml', 'pci']));
        const wanted = new Map<string, string | undefined>([
          ...live.disks.filter((d) => d.target.bus === 'virtio').map((d) => [`disk-${d.target.dev}`, place(d.address)] as const),
          ...live.interfaces.map((n) => [n.alias ?? '?', place(n.address)] as const),
          ...(live.videos ?? []).map((v, i) => [`video${i}`, place(v.address)] as const),
          ...(live.inputs ?? []).flatMap((v, i) => (v.bus === 'virtio' ? [[`input${i}`, place(v.address)] as const] : [])),
          ...(live.filesystems ?? []).map((f, i) => [`fs${i}`, place(f.address)] as const),
          ...(live.rngs ?? []).map((r, i) => [`rng${i}`, place(r.address)] as const),
          ['balloon0', place(live.memballoon?.address)],
          // Controllers by their QEMU ids; q35's SATA is ICH9's own (00:1f.2, no id of ours).
          ...(live.controllers ?? [])
            .filter((c) => c.model !== 'pci-root' && c.model !== 'pcie-root' && c.type !== 'ide' && c.address?.slot !== 0x1f)
            .map(
              (c) =>
                [
                  c.type === 'pci' ? `pci.${c.index}` : c.type === 'usb' ? 'usb' : `${c.type}${c.index}`,
                  place(c.address),
                ] as const,
            ),
        ]);
        for (const id of expect) assert.ok(wanted.has(id), `${id} is in the live XML`);
        // Devices behind a root port appear once the firmware has numbered the port's bus.
        const seen = await pciWhen(monitor, (m) => [...wanted.keys()].every((k) => m.has(k)), 60_000);
        for (const [id, where] of wanted) {
          assert.ok(where, `${id} has a PCI address in the live XML`);
          assert.equal(seen.get(id), where, `${id}: QEMU's place and the live XML's`);
        }
        t.diagnostic(`${machine}: ${[...wanted].map(([id, where]) => `${id}@${where ?? '?'}`).join(' ')}`);
        const places = [...seen.values()];
        assert.equal(new Set(places).size, places.length, `two devices in one slot: ${JSON.stringify([...seen])}`);
      };

      const controllers = ['usb', 'scsi0', ...(machine === 'pc' ? ['sata0'] : []), 'virtio-serial0'];
      await check(['disk-vda', 'fs0', 'video0', 'input0', 'rng0', 'balloon0', ...controllers]);
      await svirtInOk(ns, dir, [...S, 'attach-disk', 'pci', vdb, 'vdb']);
      await svirtInOk(ns, dir, [...S, 'attach-interface', 'pci', 'bridge', 'br-pci', '--model', 'virtio']);
      await check(['disk-vda', 'disk-vdb', 'net0', 'fs0', 'video0', 'input0', 'rng0', 'balloon0', ...controllers]);
      await svirtInOk(ns, dir, [...S, 'destroy', 'pci']);
    });
});
