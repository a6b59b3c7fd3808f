/**
 * What a network is on the host: a Linux bridge with the network's address, svirt's own
 * nftables table, and a confined dnsmasq. Started in that order and undone in reverse on
 * failure; stopped by what the store recorded (the bridge by name and ifindex, the table by
 * its name, dnsmasq by pid and start time), in svirt's network namespace only.
 */
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { SvirtError } from '../errors.js';
import { run } from './cmd.js';
import { dnsmasqFiles, startDnsmasq, stopDnsmasq } from './dnsmasq.js';
import { deleteLink, ifindexOf, linkExists } from './links.js';
import type { NetworkDef, NetworkRuntime } from './network-def.js';
import { applyNft, removeNft } from './nft.js';

/** The inode of this process's network namespace: the bridges and taps svirt sees are there. */
export function currentNetns(): number {
  return statSync('/proc/self/ns/net').ino;
}

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

/**
 * Starts a defined network (its bridge name and MAC were fixed at define). `record` is told
 * what exists after each step (a NetworkRuntime of the parts made so far), so the store can
 * name it to whoever finishes the job if this process dies half way.
 */
export async function startNetworkHost(
  net: NetworkDef,
  stateDir: string,
  record: (sofar: NetworkRuntime) => void = () => undefined,
): Promise<NetworkRuntime> {
  const bridge = net.bridge.name;
  if (bridge === undefined) throw new SvirtError('SVIRT_ERR_INTERNAL', `network '${net.name}' has no bridge name`);
  if (linkExists(bridge)) {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `network '${net.name}': an interface "${bridge}" exists already (svirt makes its bridge itself)`,
    );
  }
  const undo: (() => Promise<void> | void)[] = [];
  try {
    const delay = String(net.bridge.delay * 100);
    await run(['ip', 'link', 'add', 'name', bridge, 'type', 'bridge', 'forward_delay', delay], `create bridge ${bridge}`);
    const bridgeIfindex = ifindexOf(bridge) ?? 0;
    undo.push(async () => void (await deleteLink(bridge, bridgeIfindex)));
    const startedAt = Date.now();
    const base = { netns: currentNetns(), bridge, bridgeIfindex, startedAt };
    record(base);
    if (net.bridge.stp)
      await run(['ip', 'link', 'set', 'dev', bridge, 'type', 'bridge', 'stp_state', '1'], `enable STP on ${bridge}`);
    if (net.mac !== undefined) await run(['ip', 'link', 'set', 'dev', bridge, 'address', net.mac], `set the MAC of ${bridge}`);
    const ip = net.ips[0];
    if (ip) await run(['ip', 'addr', 'add', `${ip.address}/${ip.prefix}`, 'dev', bridge], `address bridge ${bridge}`);
    await run(['ip', 'link', 'set', 'dev', bridge, 'up'], `bring bridge ${bridge} up`);
    // NAT needs forwarding on (libvirt turns it on too); it is left on at destroy, as libvirt leaves it.
    if (net.forward.mode === 'nat' && readFileSync(IP_FORWARD, 'utf8').trim() !== '1') writeFileSync(IP_FORWARD, '1\n');
    const nftTable = await applyNft(net, bridge);
    undo.push(() => removeNft(nftTable));
    record({ ...base, nftTable });
    let dnsmasq: NetworkRuntime['dnsmasq'];
    if (ip && (net.dns || (ip.dhcp?.ranges.length ?? 0) > 0)) {
      const dir = networkStateDir(stateDir, net.name);
      dnsmasq = await startDnsmasq(net, bridge, dnsmasqFiles(dir), (p) => record({ ...base, nftTable, dnsmasq: p }));
    }
    return { ...base, nftTable, ...(dnsmasq === undefined ? {} : { dnsmasq }) };
  } catch (err) {
    for (const u of undo.reverse()) {
      try {
        await u();
      } catch {
        // The start's own error is the one to report; what is left is named by the next start.
      }
    }
    throw err;
  }
}

/** The network's own dir in the state dir (dnsmasq's configuration, leases and log). Root's, 0755: dnsmasq's user reads it. */
export function networkStateDir(stateDir: string, name: string): string {
  const dir = `${stateDir}/networks/${name}`;
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  return dir;
}

/** Stops what a start recorded; each part is tried, the errors are joined. */
export async function stopNetworkHost(name: string, rt: NetworkRuntime): Promise<void> {
  if (rt.netns !== currentNetns()) {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `network '${name}' was started in another network namespace (inode ${rt.netns}); run svirt there to stop it`,
    );
  }
  const errors: string[] = [];
  const attempt = async (fn: () => Promise<void> | void): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      errors.push(err instanceof Error ? err.message : String(err));
    }
  };
  if (rt.dnsmasq) await attempt(() => stopDnsmasq(rt.dnsmasq as NonNullable<NetworkRuntime['dnsmasq']>));
  if (rt.nftTable !== undefined) await attempt(() => removeNft(rt.nftTable as string));
  await attempt(async () => void (await deleteLink(rt.bridge, rt.bridgeIfindex)));
  if (errors.length > 0) throw new SvirtError('SVIRT_ERR_HOST', `cannot stop network '${name}' cleanly: ${errors.join('; ')}`);
}

/** Whether what a start recorded is still there (after a host reboot it is not). */
export function networkAlive(rt: NetworkRuntime): boolean {
  return rt.netns === currentNetns() && ifindexOf(rt.bridge) === rt.bridgeIfindex;
}
