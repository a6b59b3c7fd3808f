/**
 * Host network interfaces, read from /sys/class/net (of svirt's own network namespace) and
 * changed with `ip link`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { ifnameProblem } from '../domain/index.js';
import { SvirtError } from '../errors.js';
import { run } from './cmd.js';

function sys(name: string, file: string): string | undefined {
  if (ifnameProblem(name) !== undefined) return undefined;
  try {
    return readFileSync(`/sys/class/net/${name}/${file}`, 'utf8').trim();
  } catch {
    return undefined; // no such interface (or attribute)
  }
}

/** The ifindex of interface `name`, or undefined when there is none. */
export function ifindexOf(name: string): number | undefined {
  const v = sys(name, 'ifindex');
  return v === undefined ? undefined : Number(v);
}

export function linkExists(name: string): boolean {
  return ifindexOf(name) !== undefined;
}

/** True when `name` is a Linux bridge. */
export function isBridge(name: string): boolean {
  return ifnameProblem(name) === undefined && existsSync(`/sys/class/net/${name}/bridge`);
}

/** True when `name` is a tun/tap device. */
export function isTap(name: string): boolean {
  return sys(name, 'tun_flags') !== undefined;
}

/** The bridge `name` is enslaved to, or undefined. */
export function masterOf(name: string): string | undefined {
  try {
    const link = readFileSync(`/sys/class/net/${name}/master/uevent`, 'utf8');
    return /^INTERFACE=(.*)$/m.exec(link)?.[1];
  } catch {
    return undefined; // no master
  }
}

/**
 * Deletes interface `name` only if it is still the one with `ifindex` (a name is reused by the
 * next guest; an ifindex is not). Returns false when it was already gone or is another one.
 */
export async function deleteLink(name: string, ifindex: number): Promise<boolean> {
  if (ifindexOf(name) !== ifindex) return false;
  try {
    await run(['ip', 'link', 'del', 'dev', name], `remove interface ${name}`);
  } catch (err) {
    if (ifindexOf(name) !== ifindex) return false; // went away meanwhile (its last fd closed)
    throw err;
  }
  return true;
}

/** Checks that `bridge` is a Linux bridge in svirt's network namespace. */
export function requireBridge(bridge: string, what: string): void {
  if (isBridge(bridge)) return;
  throw new SvirtError(
    'SVIRT_ERR_OPERATION_INVALID',
    `${what}: ${linkExists(bridge) ? `"${bridge}" is not a bridge` : `there is no bridge "${bridge}"`}`,
    { details: { bridge } },
  );
}
