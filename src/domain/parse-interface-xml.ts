import { SvirtError } from '../errors.js';
import type { InterfaceDef } from './interface-def.js';
import { parseDomainXml } from './parse-domain-xml.js';
import { parseXml } from './xml.js';

/**
 * One `<interface>` element (attach-device's and attach-interface's input) as an
 * InterfaceDef, validated by the rules of a domain's NICs (parsed inside a minimal domain,
 * as a new definition: a generated tap name or live alias in it is dropped).
 */
export function parseInterfaceXml(text: string): InterfaceDef {
  const root = parseXml(text);
  if (root.name !== 'interface') {
    throw new SvirtError('SVIRT_ERR_XML_UNSUPPORTED', `device XML: expected <interface>, got <${root.name}>`);
  }
  const body = text.replace(/^\s*<\?xml[^>]*\?>/, '');
  const wrapper =
    "<domain type='qemu'><name>device</name><uuid>00000000-0000-0000-0000-000000000000</uuid>" +
    `<memory unit='KiB'>1</memory><os><type>hvm</type></os><devices>${body}</devices></domain>`;
  const nic = parseDomainXml(wrapper, { inactive: true }).interfaces[0];
  if (!nic) throw new SvirtError('SVIRT_ERR_XML_INVALID', 'device XML: no interface found');
  return nic;
}
