/**
 * Where a hot-plugged disk goes on the guest's PCI tree: a virtio disk takes a free
 * pcie-root-port (q35) or pci.0 slot (i440fx), chosen from the live XML and recorded in it
 * with the disk, so a repair, a save and a restore see the same device tree. A SCSI disk on
 * a guest without a SCSI controller first gets one (as libvirt adds it), recorded in the live
 * XML as soon as QEMU has it.
 */
import type { DiskDef, DomainDef } from '../domain/domain-def.js';
import { formatDomainXml } from '../domain/index.js';
import { completeMachine, hotplugAddress, isPciDisk } from '../domain/machine-defaults.js';
import { pciMachine } from '../domain/pci-address.js';
import { pciProps } from '../qemu/argv-machine.js';
import type { QmpClient } from '../qemu/qmp-client.js';
import type { RunningRecord } from '../store/store.js';
import { SvirtError } from '../errors.js';
import type { LifecycleEnv } from './env.js';

/** Only virtio-blk (PCI) and SCSI disks can be hot-plugged. */
export function checkHotplug(disk: DiskDef): void {
  if ((disk.target.bus === 'virtio' && disk.device === 'disk') || disk.target.bus === 'scsi') return;
  throw new SvirtError(
    'SVIRT_ERR_OPERATION_INVALID',
    `disk ${disk.target.dev}: bus '${disk.target.bus}' does not support hotplug (use a vd* target on virtio or an sd* target on scsi)`,
  );
}

/** The disk with the PCI address it will have in the running guest (virtio disks only). */
export function placeHotplugDisk(live: DomainDef, disk: DiskDef): DiskDef {
  if (!isPciDisk(disk)) return disk;
  return { ...disk, address: hotplugAddress(live, `disk:${disk.target.dev}`, disk.address) };
}

/**
 * How long a detach waits for the guest to let go: a PCIe slot powers off only after the
 * 5 s during which the attention button press may be cancelled (pciehp), so a root port
 * gets 20 s; ACPI (i440fx) and SCSI unplugs answer well within 5 s.
 */
export function unplugTimeoutMs(live: DomainDef, disk: DiskDef): number {
  return isPciDisk(disk) && pciMachine(live.os.machine) === 'q35' ? 20_000 : 5000;
}

/** A persistent definition with a new disk: addresses (and root ports) assigned as at define. */
export function withConfigDisk(def: DomainDef, disk: DiskDef): DomainDef {
  return completeMachine({ ...def, disks: [...def.disks, disk] });
}

/**
 * Makes sure a running guest has SCSI controller 0 before an sd* disk is plugged: added with
 * device_add when QEMU lacks it (a controller QEMU already has, from an attach that died
 * before recording it, is just recorded). Returns the live definition with the controller.
 */
export async function ensureScsiController(
  env: LifecycleEnv,
  rec: RunningRecord,
  live: DomainDef,
  q: QmpClient,
): Promise<DomainDef> {
  if (live.controllers?.some((c) => c.type === 'scsi' && c.index === 0)) return live;
  const address = hotplugAddress(live, 'controller:scsi0', undefined);
  const next: DomainDef = {
    ...live,
    controllers: [...(live.controllers ?? []), { type: 'scsi', index: 0, model: 'virtio-scsi', address }],
  };
  const tree = (await q.execute('qom-list', { path: '/machine/peripheral' })) as { name: string }[];
  if (!tree.some((p) => p.name === 'scsi0')) {
    await q.execute('device_add', { driver: 'virtio-scsi-pci', id: 'scsi0', ...pciProps(next, address) });
  }
  env.store.updateRunning(rec.uuid, { liveXml: formatDomainXml(next) });
  return next;
}
