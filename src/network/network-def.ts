/** A libvirt network object as svirt runs it: a NAT or isolated IPv4 network on a Linux bridge. */

export interface DhcpRangeDef {
  readonly start: string;
  readonly end: string;
}

export interface DhcpHostDef {
  readonly mac?: string;
  readonly name?: string;
  readonly ip: string;
}

export interface NetworkIpDef {
  /** The bridge's own address (the guests' gateway and DNS server). */
  readonly address: string;
  readonly prefix: number;
  readonly dhcp?: { readonly ranges: readonly DhcpRangeDef[]; readonly hosts: readonly DhcpHostDef[] };
}

export interface NetworkDef {
  readonly name: string;
  /** Lower-case 8-4-4-4-12. */
  readonly uuid: string;
  /** `<forward mode='nat'>` masquerades the network's traffic out of the host; `none` is isolated. */
  readonly forward: {
    readonly mode: 'nat' | 'none';
    readonly dev?: string;
    readonly ports?: { readonly start: number; readonly end: number };
  };
  /** Generated (`virbrN`) at define when absent. */
  readonly bridge: { readonly name?: string; readonly stp: boolean; readonly delay: number };
  /** The bridge's MAC; generated at define when absent. */
  readonly mac?: string;
  /** `<domain name=...>`: the DNS domain dnsmasq gives the guests. */
  readonly domain?: string;
  /** `<dns enable='no'/>`: dnsmasq serves DHCP only. */
  readonly dns: boolean;
  readonly ips: readonly NetworkIpDef[];
}

/** What a started network left on the host, to find and remove exactly that later (kept in the store). */
export interface NetworkRuntime {
  /** The network namespace (inode of /proc/self/ns/net) the network was started in. */
  readonly netns: number;
  readonly bridge: string;
  readonly bridgeIfindex: number;
  /** svirt's own nftables table of this network (`ip svirt-<name>`). */
  readonly nftTable?: string;
  readonly dnsmasq?: { readonly pid: number; readonly startTime: number };
  readonly startedAt: number;
}
