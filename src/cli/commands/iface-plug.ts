import { canonicalMac, parseInterfaceXml } from '../../domain/index.js';
import { escapeAttr } from '../../domain/xml.js';
import { SvirtError } from '../../errors.js';
import type { DeviceChangeOptions } from '../../lifecycle/hypervisor.js';
import { arg, type ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';

/** virsh's --live/--config/--persistent/--current. */
function where(args: ParsedArgs): DeviceChangeOptions {
  const live = args.flags.has('live');
  const config = args.flags.has('config') || args.flags.has('persistent');
  if (args.flags.has('current') || (!live && !config)) return {};
  return { live: live || args.flags.has('persistent'), config };
}

function macOption(args: ParsedArgs): string | undefined {
  const raw = args.options.get('mac');
  if (raw === undefined) return undefined;
  const mac = canonicalMac(raw);
  if (mac === undefined) throw new SvirtError('SVIRT_ERR_USAGE', `--mac ${raw} is not a unicast MAC address`);
  return mac;
}

/** `attach-interface NAME TYPE SOURCE [--mac M] [--model M] [--target T] [--live] [--config]` (virsh's verb). */
export async function runAttachInterface(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const type = arg(args, 1, 'TYPE');
  const source = type === 'user' ? args.positional[2] : arg(args, 2, 'SOURCE');
  if (type !== 'user' && type !== 'bridge' && type !== 'network') {
    throw new SvirtError('SVIRT_ERR_USAGE', `attach-interface: TYPE must be user, bridge or network, got '${type}'`);
  }
  const mac = macOption(args);
  const model = args.options.get('model');
  const target = args.options.get('target');
  // Built as XML, so the rules of a domain's NICs apply (names, MACs, models).
  const parts = [`<interface type='${type}'>`];
  if (mac !== undefined) parts.push(`<mac address='${mac}'/>`);
  if (type !== 'user' && source !== undefined)
    parts.push(`<source ${type === 'bridge' ? 'bridge' : 'network'}='${escapeAttr(source)}'/>`);
  if (target !== undefined) parts.push(`<target dev='${escapeAttr(target)}'/>`);
  if (model !== undefined) parts.push(`<model type='${escapeAttr(model)}'/>`);
  parts.push('</interface>');
  const nic = parseInterfaceXml(parts.join(''));
  const hv = await openHypervisor(args);
  const added = await hv.attachInterface(name, nic, where(args));
  output(args, 'Interface attached successfully', {
    name,
    type,
    source: source ?? null,
    mac: added.mac ?? null,
    target: added.target ?? null,
  });
  return 0;
}

/** `detach-interface NAME TYPE [--mac M] [--live] [--config]` */
export async function runDetachInterface(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const type = arg(args, 1, 'TYPE');
  const hv = await openHypervisor(args);
  await hv.detachInterface(name, type, macOption(args), where(args));
  output(args, 'Interface detached successfully', { name, type });
  return 0;
}
