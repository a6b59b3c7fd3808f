import { SvirtError } from '../../errors.js';
import { agentAddresses, interfaceAddresses, type AddressSource } from '../../lifecycle/nic-addresses.js';
import { passtGuestAddress } from '../../network/passt.js';
import { arg, type ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';
import { table } from './table.js';
import { Networks } from '../../lifecycle/networks.js';

/** `domiflist NAME`: virsh's table of a guest's NICs. */
export async function runDomiflist(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args);
  const g = hv.lookup(arg(args, 0, 'NAME'));
  const nics = g.def.interfaces.map((n) => ({
    interface: n.target ?? '-',
    type: n.type,
    source: n.source ?? '-',
    model: n.model ?? 'rtl8139',
    mac: n.mac ?? '-',
  }));
  const rows = nics.map((n) => [n.interface, n.type, n.source, n.model, n.mac]);
  output(args, table(['Interface', 'Type', 'Source', 'Model', 'MAC'], rows), nics);
  return 0;
}

/** `domifaddr NAME [--source lease|agent|arp]`: virsh's table of a running guest's addresses. */
export async function runDomifaddr(args: ParsedArgs): Promise<number> {
  const source = args.options.get('source') ?? 'lease';
  if (source !== 'lease' && source !== 'agent' && source !== 'arp') {
    throw new SvirtError('SVIRT_ERR_USAGE', `domifaddr: --source must be lease, agent or arp, got '${source}'`);
  }
  const hv = await openHypervisor(args);
  const g = hv.lookup(arg(args, 0, 'NAME'));
  const addrs =
    source === 'agent'
      ? agentAddresses(await hv.agentCommand(g.def.name, '{"execute":"guest-network-get-interfaces"}', 5000))
      : interfaceAddresses(g, new Networks(hv.env), source as AddressSource, passtGuestAddress);
  const rows = addrs.map((a) => [a.name, a.mac, a.protocol, `${a.address}/${a.prefix}`]);
  output(args, table(['Name', 'MAC address', 'Protocol', 'Address'], rows), addrs);
  return 0;
}
