import type { DiskDef, DomainDef } from '../domain/domain-def.js';
import { diskLayers } from '../domain/disk-layers.js';
import { SvirtError } from '../errors.js';
import { balloonArgs, controllerArgs, firmwareArgs, pciProps, rngArgs, sataBus, type FirmwareFds } from './argv-machine.js';
import { chardevArgs, chardevSlots, qemuOptValue } from './chardev-argv.js';
import { pipeChange, type ChardevChange, type PipeFds } from './chardev-pipe.js';
import { displayArgs } from './display-argv.js';
import type { FdSetEntry } from './fd-layout.js';
import { nicArgs, type NicBackend } from './netdev-args.js';

export type { FdSetEntry } from './fd-layout.js';

export interface ArgvOptions {
  readonly emulator: string;
  readonly accel: 'kvm' | 'tcg';
  /** QEMU's fd of the monitor's listening socket (bound by svirt where no guest can write). */
  readonly qmpFd: number;
  readonly paused: boolean;
  /** The fdset of each disk layer, keyed by its DiskLayer key. */
  readonly fdsets: ReadonlyMap<string, FdSetEntry>;
  /**
   * QEMU's fd for each file or bound-socket chardev, by index in def.chardevs: svirt opened
   * (or bound) and labelled it, so QEMU reaches no chardev path of its own.
   */
  readonly chardevFds?: ReadonlyMap<number, FdSetEntry>;
  /** The FIFO fds of each pipe chardev, by index in def.chardevs (see chardev-pipe.ts). */
  readonly pipeFds?: ReadonlyMap<number, PipeFds>;
  /** The backend of each NIC, by index in def.interfaces (taps and passt sockets as fds). */
  readonly nics?: ReadonlyMap<number, NicBackend>;
  /** The host random device svirt opened for each `<rng model='random'>`, by rng index. */
  readonly rngFds?: ReadonlyMap<number, FdSetEntry>;
  /** A pflash loader's code and vars (nvram), opened and labelled by svirt. */
  readonly firmwareFds?: FirmwareFds;
  /** The `<log file>` fdset of each chardev that has one, by index in def.chardevs. */
  readonly logFds?: ReadonlyMap<number, FdSetEntry>;
}

export const SANDBOX = 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny';

export function diskKey(disk: DiskDef, layer: number): string {
  return `${disk.target.dev}#${layer}`;
}

/** The device id of a disk, used for `qemu-io -d /machine/peripheral/<id>/...` and device_del. */
export function diskDeviceId(disk: DiskDef): string {
  return `disk-${disk.target.dev}`;
}

/** The top format node of a disk (what the device is attached to). */
export function diskNodeName(disk: DiskDef): string {
  return diskLayers(disk)[0]?.fmtNode ?? `${disk.target.dev}-fmt0`;
}

/**
 * QEMU's argv for a definition. Disks are `-blockdev` chains over inherited fds with the
 * declared format on every layer, so QEMU never probes a format or opens a backing file
 * by a path written inside an image.
 */
export function buildArgv(def: DomainDef, o: ArgvOptions): string[] {
  const fw = firmwareArgs(def, o.firmwareFds);
  const machine = [def.os.machine ?? 'pc', `accel=${o.accel}`, 'dump-guest-core=off', ...fw.machine];
  const argv: string[] = [
    o.emulator,
    '-name',
    `guest=${def.name},debug-threads=on`,
    '-uuid',
    def.uuid,
    '-machine',
    machine.join(','),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-sandbox',
    SANDBOX,
    '-m',
    `${Math.max(1, Math.ceil(def.currentMemoryKiB / 1024))}M`,
    '-smp',
    def.vcpusCurrent === undefined ? String(def.vcpus) : `${def.vcpusCurrent},maxcpus=${def.vcpus}`,
    '-chardev',
    `socket,id=qmp,fd=${o.qmpFd},server=on,wait=off`,
    '-mon',
    'chardev=qmp,mode=control',
    '-msg',
    'timestamp=on',
  ];
  if (o.paused) argv.push('-S');
  const os = def.os;
  if (os.kernel !== undefined) argv.push('-kernel', os.kernel);
  if (os.initrd !== undefined) argv.push('-initrd', os.initrd);
  if (os.cmdline !== undefined) argv.push('-append', os.cmdline);
  if (os.dtb !== undefined) argv.push('-dtb', os.dtb);
  if (os.loader !== undefined && os.loader.type !== 'pflash') argv.push('-bios', os.loader.path);
  for (const entry of o.fdsets.values()) {
    if (entry.wait !== undefined) continue; // no fd yet: a placeholder node (blockdevNodes)
    argv.push('-add-fd', `fd=${entry.fd},set=${entry.set},opaque=${opaque(entry.path)}`);
  }
  for (const entry of o.chardevFds?.values() ?? []) {
    if (entry.set > 0) argv.push('-add-fd', `fd=${entry.fd},set=${entry.set},opaque=${opaque(entry.path)}`);
  }
  for (const pipe of o.pipeFds?.values() ?? []) {
    for (const e of pipe.fds) argv.push('-add-fd', `fd=${e.fd},set=${e.set},opaque=${opaque(e.path)}`);
  }
  for (const e of o.logFds?.values() ?? []) argv.push('-add-fd', `fd=${e.fd},set=${e.set},opaque=${opaque(e.path)}`);
  const machineFds = [...(o.rngFds?.values() ?? []), o.firmwareFds?.code, o.firmwareFds?.vars];
  for (const e of machineFds) if (e) argv.push('-add-fd', `fd=${e.fd},set=${e.set},opaque=${opaque(e.path)}`);
  argv.push(...fw.args);
  // Controllers come from the definition (machine-defaults.ts), so a saved state restores
  // into the same device tree; root ports first, so every device finds its bus. Devices at
  // an assigned address come before those QEMU places itself, which then take free slots.
  argv.push(...controllerArgs(def));
  for (const disk of def.disks) argv.push(...diskArgs(def, disk, o));
  argv.push(...balloonArgs(def), ...rngArgs(def, o.rngFds));
  for (const [i, nic] of def.interfaces.entries()) {
    const backend = o.nics?.get(i);
    if (!backend) throw new SvirtError('SVIRT_ERR_INTERNAL', `no backend was made for interface ${i} of '${def.name}'`);
    argv.push(...nicArgs(def, nic, backend));
  }
  argv.push(...chardevArgs(def, o));
  argv.push(...displayArgs(def));
  return argv;
}

/** The QMP changes a pipe chardev with PATH.in and PATH.out needs once QEMU runs paused. */
export function chardevChanges(def: DomainDef, pipeFds: ReadonlyMap<number, PipeFds>): ChardevChange[] {
  const out: ChardevChange[] = [];
  for (const s of chardevSlots(def)) {
    const pipe = pipeFds.get(s.index);
    const change = pipe && pipeChange(s.id, pipe);
    if (change) out.push(change);
  }
  return out;
}

/** The fdset's note is the image path (a repair finds the fdset by it); commas are doubled for QemuOpts. */
function opaque(path: string): string {
  return qemuOptValue(path);
}

/** `-blockdev` nodes (deepest backing layer first) and the `-device` for one disk. */
export function diskArgs(def: DomainDef, disk: DiskDef, o: Pick<ArgvOptions, 'fdsets'>): string[] {
  const args: string[] = [];
  if (disk.path !== undefined) {
    for (const node of blockdevNodes(disk, o.fdsets)) args.push('-blockdev', JSON.stringify(node));
  }
  const drive = disk.path !== undefined ? diskNodeName(disk) : undefined;
  args.push(...deviceArgs(def, disk, drive));
  return args;
}

/** The blockdev nodes of a disk, deepest layer first, as QMP `blockdev-add` arguments. */
export function blockdevNodes(disk: DiskDef, fdsets: ReadonlyMap<string, FdSetEntry>): Record<string, unknown>[] {
  const layers = diskLayers(disk);
  const nodes: Record<string, unknown>[] = [];
  for (const layer of [...layers].reverse()) {
    const entry = fdsets.get(layer.key);
    if (!entry) throw new SvirtError('SVIRT_ERR_INTERNAL', `no fd was opened for disk ${disk.target.dev} layer ${layer.index}`);
    // A placeholder until a migration's Finish attaches the image (src/lifecycle/migrate/attach-later.ts).
    const file =
      entry.wait !== undefined ? placeholderNode(layer.fileNode, entry.wait) : fileNode(layer.fileNode, entry, layer.readonly);
    nodes.push(file);
    const fmt: Record<string, unknown> = {
      driver: layer.format,
      file: file['node-name'],
      'node-name': layer.fmtNode,
      'read-only': layer.readonly,
    };
    if (layer.format === 'qcow2') fmt['backing'] = layers[layer.index + 1]?.fmtNode ?? null;
    nodes.push(fmt);
  }
  return nodes;
}

/** The file node of a layer, over its fdset. */
export function fileNode(name: string, entry: Pick<FdSetEntry, 'block' | 'set'>, readonly: boolean): Record<string, unknown> {
  return {
    driver: entry.block ? 'host_device' : 'file',
    filename: `/dev/fdset/${entry.set}`,
    'node-name': name,
    'read-only': readonly,
    'auto-read-only': false,
    discard: 'unmap',
  };
}

/** The node-name of a file node's placeholder (a migration's destination, until Finish). */
export function placeholderName(fileNode: string): string {
  return `${fileNode}-wait`;
}

/** An empty node of the image's size, where the file node goes once the image is this guest's. */
function placeholderNode(fileNode: string, size: number): Record<string, unknown> {
  return { driver: 'null-co', size, 'read-zeroes': true, 'node-name': placeholderName(fileNode) };
}

function deviceArgs(def: DomainDef, disk: DiskDef, drive: string | undefined): string[] {
  const props = deviceProps(def, disk, drive);
  const { driver, ...rest } = props;
  const text = [String(driver), ...Object.entries(rest).map(([k, v]) => `${k}=${v === true ? 'on' : String(v)}`)].join(',');
  return ['-device', text];
}

/**
 * The `-device` (or QMP device_add) properties of a disk. Start and hotplug use the same
 * ones, so a saved state restores into an identical device tree.
 */
export function deviceProps(def: DomainDef, disk: DiskDef, drive: string | undefined): Record<string, string | number | boolean> {
  const cd = disk.device === 'cdrom';
  const unit = unitOf(disk.target.dev);
  const common = { ...(drive ? { drive } : {}), id: diskDeviceId(disk), ...(disk.shareable ? { 'share-rw': true } : {}) };
  switch (disk.target.bus) {
    case 'virtio':
      if (cd || disk.device === 'floppy') break;
      return { driver: 'virtio-blk-pci', ...common, ...pciProps(def, disk.address) };
    case 'ide':
      return { driver: cd ? 'ide-cd' : 'ide-hd', ...common, bus: `ide.${Math.floor(unit / 2)}`, unit: unit % 2 };
    case 'sata':
      return { driver: cd ? 'ide-cd' : 'ide-hd', ...common, bus: `${sataBus(def)}.${unit}` };
    case 'scsi':
      return { driver: cd ? 'scsi-cd' : 'scsi-hd', ...common, bus: 'scsi0.0', 'scsi-id': unit };
    case 'fdc':
      if (disk.device !== 'floppy') break;
      return { driver: 'floppy', ...common, unit };
  }
  throw new SvirtError(
    'SVIRT_ERR_XML_UNSUPPORTED',
    `domain '${def.name}': disk ${disk.target.dev}: ${disk.device} on bus '${disk.target.bus}' is not supported`,
  );
}

/** vda → 0, hdc → 2, sdb → 1: libvirt's unit from the target name. */
function unitOf(dev: string): number {
  const letters = dev.replace(/^(vd|hd|sd|fd|xvd)/, '');
  let n = 0;
  for (const ch of letters) n = n * 26 + (ch.charCodeAt(0) - 96);
  return Math.max(0, n - 1);
}
