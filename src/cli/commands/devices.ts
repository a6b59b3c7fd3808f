import type { DiskDef } from '../../domain/domain-def.js';
import { parseDiskXml } from '../../domain/index.js';
import { SvirtError } from '../../errors.js';
import { checkInputKind } from '../../host/read-input.js';
import type { DeviceChangeOptions } from '../../lifecycle/hypervisor.js';
import { arg, type ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';
import { readXmlFile } from './read-xml.js';

/** virsh's --live/--config/--persistent/--current. */
function where(args: ParsedArgs): DeviceChangeOptions {
  const live = args.flags.has('live');
  const config = args.flags.has('config') || args.flags.has('persistent');
  if (args.flags.has('current') || (!live && !config)) return {};
  return { live: live || args.flags.has('persistent'), config };
}

/** libvirt's bus from the target name: vd → virtio, sd → scsi, hd → ide, fd → fdc. */
function busFor(target: string): string {
  if (target.startsWith('vd')) return 'virtio';
  if (target.startsWith('sd')) return 'scsi';
  if (target.startsWith('fd')) return 'fdc';
  return 'ide';
}

/** `attach-disk NAME SOURCE TARGET [--mode readonly|shareable] [--type disk|cdrom] [--subdriver raw|qcow2] [--targetbus BUS]` */
export async function runAttachDisk(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const source = arg(args, 1, 'SOURCE');
  const target = arg(args, 2, 'TARGET');
  const mode = args.options.get('mode');
  if (mode !== undefined && mode !== 'readonly' && mode !== 'shareable') {
    throw new SvirtError('SVIRT_ERR_USAGE', `attach-disk: --mode must be readonly or shareable, got '${mode}'`);
  }
  const type = args.options.get('type') ?? 'disk';
  if (type !== 'disk' && type !== 'cdrom')
    throw new SvirtError('SVIRT_ERR_USAGE', `attach-disk: --type must be disk or cdrom, got '${type}'`);
  const format = args.options.get('subdriver') ?? 'raw';
  if (format !== 'raw' && format !== 'qcow2')
    throw new SvirtError(
      'SVIRT_ERR_USAGE',
      `attach-disk: --subdriver must be raw or qcow2 (formats are never probed), got '${format}'`,
    );
  const bus = args.options.get('targetbus') ?? busFor(target);
  // Built as XML so the same validation as for a domain's disks applies (paths, targets).
  const xml = `<disk type='${source.startsWith('/dev/') ? 'block' : 'file'}' device='${type}'><driver name='qemu' type='${format}'/><source ${
    source.startsWith('/dev/') ? 'dev' : 'file'
  }='${escapeAttr(source)}'/><target dev='${escapeAttr(target)}' bus='${escapeAttr(bus)}'/>${mode === 'readonly' ? '<readonly/>' : ''}${mode === 'shareable' ? '<shareable/>' : ''}</disk>`;
  const disk: DiskDef = parseDiskXml(xml);
  // Refused before the store is opened; the lifecycle checks the kind again on the file it opens.
  checkInputKind(source, 'regular-or-block', `disk ${target}`);
  const hv = await openHypervisor(args);
  await hv.attachDisk(name, disk, where(args));
  output(args, 'Disk attached successfully', { name, target, source });
  return 0;
}

/** `attach-device NAME FILE`: a `<disk>` element. */
export async function runAttachDevice(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const disk = parseDiskXml(await readXmlFile(arg(args, 1, 'FILE'), 'device XML'));
  const hv = await openHypervisor(args);
  await hv.attachDisk(name, disk, where(args));
  output(args, 'Device attached successfully', { name, target: disk.target.dev });
  return 0;
}

export async function runDetachDisk(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const target = arg(args, 1, 'TARGET');
  const hv = await openHypervisor(args);
  await hv.detachDisk(name, target, where(args));
  output(args, 'Disk detached successfully', { name, target });
  return 0;
}

/** `change-media NAME TARGET [SOURCE] --insert|--eject|--update` */
export async function runChangeMedia(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const target = arg(args, 1, 'TARGET');
  const source = args.positional[2] ?? args.options.get('source');
  const eject = args.flags.has('eject');
  if (eject && source !== undefined) throw new SvirtError('SVIRT_ERR_USAGE', 'change-media: --eject takes no SOURCE');
  if (!eject && source === undefined)
    throw new SvirtError('SVIRT_ERR_USAGE', 'change-media: SOURCE is needed to insert or update a medium');
  if (source !== undefined) checkInputKind(source, 'regular-or-block', `medium of ${target}`);
  const hv = await openHypervisor(args);
  await hv.changeMedia(name, target, eject ? undefined : source, where(args));
  output(args, eject ? 'Successfully ejected media.' : 'Successfully inserted media.', { name, target, source: source ?? null });
  return 0;
}

function escapeAttr(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/'/g, '&apos;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
