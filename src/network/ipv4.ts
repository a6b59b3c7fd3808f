/** IPv4 address arithmetic for network definitions (dotted quads as 32-bit numbers). */
import { isIPv4 } from 'node:net';

export function ipToInt(ip: string): number {
  return ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

/** The prefix length of a contiguous netmask, or undefined. */
export function prefixOf(netmask: string): number | undefined {
  if (!isIPv4(netmask)) return undefined;
  const bits = ipToInt(netmask).toString(2).padStart(32, '0');
  return /^1*0*$/.test(bits) ? (bits.indexOf('0') === -1 ? 32 : bits.indexOf('0')) : undefined;
}

export function netmaskOf(prefix: number): string {
  return intToIp(prefix === 0 ? 0 : (2 ** 32 - 2 ** (32 - prefix)) >>> 0);
}

/** The network address of `ip`/`prefix`. */
export function networkOf(ip: string, prefix: number): string {
  const size = 2 ** (32 - prefix);
  return intToIp(Math.floor(ipToInt(ip) / size) * size);
}

/** True when `ip` is a host address (neither the network nor the broadcast address) of ip/prefix. */
export function inSubnet(ip: string, net: string, prefix: number): boolean {
  if (!isIPv4(ip)) return false;
  const size = 2 ** (32 - prefix);
  const base = ipToInt(networkOf(net, prefix));
  const n = ipToInt(ip);
  return n > base && n < base + size - 1;
}
