/**
 * A network's nftables rules: one table of svirt's own per network (`ip svirt-<name>`),
 * created whole at start and deleted whole at destroy. svirt never reads, changes or flushes
 * any other table. NAT masquerades the subnet's traffic out of the host and lets only
 * replies back in; an isolated network forwards nothing in or out of its bridge.
 */
import type { NetworkDef } from './network-def.js';
import { networkOf } from './ipv4.js';
import { run } from './cmd.js';

export function nftTableName(net: Pick<NetworkDef, 'name'>): string {
  return `svirt-${net.name}`;
}

/** The `nft -f` text that creates the network's table (golden-file tested). */
export function nftRules(net: NetworkDef, bridge: string): string {
  const table = nftTableName(net);
  const ip = net.ips[0];
  const lines = [`table ip ${table} {`];
  if (net.forward.mode === 'nat' && ip) {
    const subnet = `${networkOf(ip.address, ip.prefix)}/${ip.prefix}`;
    const out = net.forward.dev === undefined ? '' : `oifname "${net.forward.dev}" `;
    const ports = net.forward.ports ?? { start: 1024, end: 65535 };
    lines.push(
      '  chain postrouting {',
      '    type nat hook postrouting priority srcnat; policy accept;',
      // Multicast and broadcast stay on the network, as libvirt leaves them.
      `    ip saddr ${subnet} ip daddr 224.0.0.0/24 return`,
      `    ip saddr ${subnet} ip daddr 255.255.255.255 return`,
      `    ip saddr ${subnet} ip daddr != ${subnet} ${out}meta l4proto { tcp, udp } masquerade to :${ports.start}-${ports.end}`,
      `    ip saddr ${subnet} ip daddr != ${subnet} ${out}masquerade`,
      '  }',
      '  chain forward {',
      '    type filter hook forward priority filter; policy accept;',
      `    iifname "${bridge}" ip saddr != ${subnet} drop`,
      `    oifname "${bridge}" ip daddr ${subnet} ct state established,related accept`,
      `    oifname "${bridge}" drop`,
      `    iifname "${bridge}" ${out}accept`,
      `    iifname "${bridge}" drop`,
      '  }',
    );
  } else {
    lines.push(
      '  chain forward {',
      '    type filter hook forward priority filter; policy accept;',
      `    iifname "${bridge}" drop`,
      `    oifname "${bridge}" drop`,
      '  }',
    );
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

/** Creates the table (replacing a stale one of the same name: it is svirt's by its name). */
export async function applyNft(net: NetworkDef, bridge: string): Promise<string> {
  const table = nftTableName(net);
  await removeNft(table);
  await run(['nft', '-f', '-'], `add the nftables rules of network '${net.name}'`, nftRules(net, bridge));
  return table;
}

/** Deletes svirt's table of a network; a table already gone is not an error. */
export async function removeNft(table: string): Promise<void> {
  const list = await run(['nft', 'list', 'tables', 'ip'], 'list the nftables tables');
  if (!list.split('\n').some((l) => l.trim() === `table ip ${table}`)) return;
  await run(['nft', 'delete', 'table', 'ip', table], `delete the nftables table ${table}`);
}
