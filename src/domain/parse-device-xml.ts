import { SvirtError } from '../errors.js';
import type { DiskDef } from './domain-def.js';
import { parseDomainXml } from './parse-domain-xml.js';
import { parseXml } from './xml.js';

/**
 * One `<disk>` element (virsh attach-device's input) as a DiskDef: validated by the same
 * rules as a disk inside a domain, by parsing it inside a minimal one.
 */
export function parseDiskXml(text: string): DiskDef {
  const root = parseXml(text);
  if (root.name !== 'disk') {
    throw new SvirtError('SVIRT_ERR_XML_UNSUPPORTED', `device XML: only <disk> devices can be attached, got <${root.name}>`);
  }
  const body = text.replace(/^\s*<\?xml[^>]*\?>/, '');
  const wrapper =
    "<domain type='qemu'><name>device</name><uuid>00000000-0000-0000-0000-000000000000</uuid>" +
    `<memory unit='KiB'>1</memory><os><type>hvm</type></os><devices>${body}</devices></domain>`;
  const def = parseDomainXml(wrapper, { inactive: true });
  const disk = def.disks[0];
  if (!disk) throw new SvirtError('SVIRT_ERR_XML_INVALID', 'device XML: no disk found');
  return disk;
}
