/**
 * passt for a user NIC, as libvirt 9 runs it for `<backend type='passt'/>`: a helper process
 * under the guest's confinement (src/lifecycle/helpers.ts), connected to QEMU by a socketpair
 * svirt makes: passt gets one end (`--fd`), QEMU the other (`-netdev stream,addr.type=fd`).
 * No socket is ever bound on the filesystem, so there is nothing another guest could
 * connect to. Port forwards come from `<portForward>` (`-t`/`-u`); passt binds them on the
 * host and needs TCP connect to any port for the guest's own connections.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { isIP } from 'node:net';
import type { InterfaceDef, PortForwardDef } from '../domain/index.js';
import { SvirtError } from '../errors.js';
import type { HelperSpec } from '../security/helper.js';

export const PASST = '/usr/bin/passt';
/** passt's end of the socketpair: the first fd a helper inherits (FdLayout numbers from 4). */
export const PASST_FD = 4;

/** The `-t`/`-u` value of one `<portForward>`: `[ADDR/]PORTS[:PORTS],...` with `~PORTS` excluded. */
export function portSpec(p: PortForwardDef): string {
  const prefix = p.address === undefined ? '' : `${p.address}/`;
  const parts = p.ranges.map((r) => {
    const from = r.end === undefined ? String(r.start) : `${r.start}-${r.end}`;
    if (r.exclude) return `~${from}`;
    if (r.to === undefined) return from;
    const to = r.end === undefined ? String(r.to) : `${r.to}-${r.to + (r.end - r.start)}`;
    return `${from}:${to}`;
  });
  return `${prefix}${parts.join(',')}`;
}

/** The host TCP ports passt binds for the forwards (Landlock's bind rules). */
export function forwardedTcpPorts(nic: InterfaceDef): number[] {
  const out: number[] = [];
  for (const p of nic.portForwards) {
    if (p.proto !== 'tcp') continue;
    for (const r of p.ranges) {
      if (r.exclude) continue;
      for (let port = r.start; port <= (r.end ?? r.start) && out.length < 4096; port++) out.push(port);
    }
  }
  return out;
}

/** passt's argv for a NIC. */
export function passtArgv(nic: InterfaceDef, what: string, dns: readonly string[] = hostDns()): string[] {
  const argv = [PASST, '--foreground', '--fd', String(PASST_FD), ...dns.flatMap((d) => ['--dns', d])];
  for (const p of nic.portForwards) {
    if (p.dev !== undefined)
      throw new SvirtError('SVIRT_ERR_XML_UNSUPPORTED', `${what}: <portForward dev=...> is not supported (give address=)`);
    argv.push(p.proto === 'tcp' ? '--tcp-ports' : '--udp-ports', portSpec(p));
  }
  return argv;
}

/** The host's IPv4/IPv6 name servers (at most 3, from /etc/resolv.conf, read by svirt with a size cap). */
export function hostDns(path = '/etc/resolv.conf'): string[] {
  let text: string;
  try {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      if (!fstatSync(fd).isFile()) return [];
      const buf = Buffer.alloc(64 * 1024);
      text = buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)).toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return []; // no resolv.conf: passt hands out no DNS server
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m?.[1] !== undefined && isIP(m[1]) !== 0 && out.length < 3) out.push(m[1]);
  }
  return out;
}

/** A helper id for the NIC (`[a-z0-9-]`, unique in the guest as its alias is). */
export function passtHelperId(nic: InterfaceDef): string {
  return passtHelperIdOf(nic.alias ?? 'net');
}

/** The helper id of the passt behind QEMU device `alias` (a hot-plug's repair knows only the alias). */
export function passtHelperIdOf(alias: string): string {
  return `passt-${alias.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`.slice(0, 32);
}

/** What the drivers confine passt by: its program, resolv.conf, TCP bind on its forwards, connect anywhere. */
export function passtSpec(nic: InterfaceDef): HelperSpec {
  return {
    kind: 'passt',
    id: passtHelperId(nic),
    binary: PASST,
    // DNS servers come on its command line (hostDns): it reads nothing of the host's /etc.
    paths: [],
    sandboxesItself: true,
    tcp: { bind: forwardedTcpPorts(nic), connectAny: true },
  };
}

/**
 * The address passt hands the guest by DHCP by default: the host's own IPv4 address and
 * prefix on the interface of its default route (what domifaddr shows for a passt NIC).
 */
export function passtGuestAddress(): { address: string; prefix: number } | undefined {
  const route = spawnSync('ip', ['-4', '-o', 'route', 'show', 'default'], { encoding: 'utf8' }).stdout;
  const dev = /\bdev (\S+)/.exec(route)?.[1];
  if (dev === undefined) return undefined;
  const addr = spawnSync('ip', ['-4', '-o', 'addr', 'show', 'dev', dev], { encoding: 'utf8' }).stdout;
  const m = /\binet (\d+\.\d+\.\d+\.\d+)\/(\d+)/.exec(addr);
  return m ? { address: m[1] ?? '', prefix: Number(m[2]) } : undefined;
}
