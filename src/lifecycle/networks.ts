/**
 * The order of every network-object step (net-define ... net-dhcp-leases) over the store
 * and src/network/. Daemonless like guests: a started network is its bridge, nft table and
 * dnsmasq, which outlive the command; the store records them so any later command (or the
 * next boot's first one) finds, checks and removes exactly those. An `autostart` network
 * is started by the first command that needs it: a guest start or plug of a NIC on it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SvirtError } from '../errors.js';
import { isAlive } from '../host/proc.js';
import { linkExists } from '../network/links.js';
import { randomMac } from '../network/mac.js';
import type { NetworkDef, NetworkRuntime } from '../network/network-def.js';
import { networkAlive, startNetworkHost, stopNetworkHost } from '../network/network-host.js';
import { formatNetworkXml, parseNetworkXml } from '../network/network-xml.js';
import { NetworkStore, type StoredNetwork } from '../store/networks.js';
import { crashPoint } from './crash-points.js';
import type { LifecycleEnv } from './env.js';
import { randomUuid } from '../host/random.js';

export interface NetworkInfo {
  readonly def: NetworkDef;
  readonly active: boolean;
  readonly autostart: boolean;
  readonly runtime?: NetworkRuntime;
}

/** One DHCP lease of dnsmasq's leases file. */
export interface Lease {
  readonly expiry: number;
  readonly mac: string;
  readonly ip: string;
  readonly prefix: number;
  readonly hostname?: string;
  readonly clientId?: string;
}

/** How long a command waits for another one's start of the same network (dnsmasq's own wait is 1.5 s). */
const START_WAIT_MS = 60_000;
const START_POLL_MS = 100;

/**
 * The networks this process is starting now. A start claim names a process, and `svirt serve`
 * runs its clients' starts side by side in one: a claim of this process is live while one of
 * its calls is still starting that network, and a leftover (to take over) otherwise. Process
 * wide, as the claim is.
 */
const STARTING_HERE = new Set<string>();

/** Whether a network's start claim belongs to a start still under way. */
function claimLive(
  claim: { ownerPid: number; ownerStart: number },
  uuid: string,
  me: { pid: number; startTime: number },
): boolean {
  if (claim.ownerPid === me.pid && claim.ownerStart === me.startTime) return STARTING_HERE.has(uuid);
  return isAlive({ pid: claim.ownerPid, startTime: claim.ownerStart });
}

export function noNetwork(name: string): SvirtError {
  return new SvirtError('SVIRT_ERR_NO_NETWORK', `Network not found: no network with matching name '${name}'`);
}

export class Networks {
  readonly store: NetworkStore;

  constructor(private readonly env: LifecycleEnv) {
    this.store = new NetworkStore(env.store.db);
  }

  private find(nameOrUuid: string): StoredNetwork {
    const n = this.store.byName(nameOrUuid) ?? this.store.byUuid(nameOrUuid.toLowerCase());
    if (!n) throw noNetwork(nameOrUuid);
    return n;
  }

  private info(n: StoredNetwork): NetworkInfo {
    const def = parseNetworkXml(n.xml);
    const runtime = n.runtime as NetworkRuntime | undefined;
    // A network whose bridge is gone (a reboot, or someone removed it) is not active.
    const active = runtime !== undefined && networkAlive(runtime);
    return { def, active, autostart: n.autostart, ...(runtime && active ? { runtime } : {}) };
  }

  get(nameOrUuid: string): NetworkInfo {
    return this.info(this.find(nameOrUuid));
  }

  list(): NetworkInfo[] {
    return this.store.list().map((n) => this.info(n));
  }

  /** `net-define`: bridge name (virbrN) and MAC are fixed now, as libvirt does. */
  define(xml: string): NetworkDef {
    let def = parseNetworkXml(xml, randomUuid);
    return this.env.store.tx(() => {
      const same = this.store.byName(def.name);
      if (same && same.uuid !== def.uuid) {
        throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `network '${def.name}' already exists with uuid ${same.uuid}`);
      }
      const other = this.store.byUuid(def.uuid);
      if (other && other.name !== def.name) {
        throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `network uuid ${def.uuid} already names network '${other.name}'`);
      }
      const others = this.store
        .list()
        .filter((n) => n.uuid !== def.uuid)
        .map((n) => parseNetworkXml(n.xml));
      const bridges = new Set(others.map((n) => n.bridge.name));
      if (def.bridge.name !== undefined && bridges.has(def.bridge.name)) {
        throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `bridge ${def.bridge.name} is already used by another network`);
      }
      if (def.bridge.name === undefined) {
        let i = 0;
        while (bridges.has(`virbr${i}`) || linkExists(`virbr${i}`)) i++;
        def = { ...def, bridge: { ...def.bridge, name: `virbr${i}` } };
      }
      if (def.mac === undefined) def = { ...def, mac: randomMac() };
      this.store.put(def.uuid, def.name, formatNetworkXml(def));
      return def;
    });
  }

  undefine(name: string): NetworkDef {
    return this.env.store.tx(() => {
      const n = this.find(name);
      const info = this.info(n);
      if (info.active) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `network '${n.name}' is active: net-destroy it first`);
      const claim = this.store.startOf(n.uuid);
      if (claim && claimLive(claim, n.uuid, this.env.me)) {
        throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `network '${n.name}' is being started by process ${claim.ownerPid}`);
      }
      this.store.endStart(n.uuid);
      this.store.delete(n.uuid);
      return info.def;
    });
  }

  /** `net-start`: an active network (also one another command started meanwhile) is an error, as in virsh. */
  async start(name: string): Promise<NetworkInfo> {
    const { info, started } = await this.startOnce(name);
    if (!started) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `network '${info.def.name}' is already active`);
    return info;
  }

  /**
   * Starts the network unless it is active, one process at a time: the start is claimed in a
   * transaction (network_starts), a second process waits for the claim's owner and then finds
   * the network active; a claim whose owner died is taken over, and what that owner had made
   * (recorded step by step) is removed before the start begins again.
   */
  private async startOnce(name: string): Promise<{ info: NetworkInfo; started: boolean }> {
    const me = this.env.me;
    const deadline = Date.now() + START_WAIT_MS;
    for (;;) {
      const step = this.env.store.tx(() => {
        const n = this.find(name);
        const info = this.info(n);
        if (info.active) return { kind: 'active', info } as const;
        const claim = this.store.startOf(n.uuid);
        if (claim && claimLive(claim, n.uuid, me)) return { kind: 'wait', owner: claim.ownerPid } as const;
        this.store.claimStart(n.uuid, me);
        return { kind: 'go', n, info, left: claim?.progress } as const;
      });
      if (step.kind === 'active') return { info: step.info, started: false };
      if (step.kind === 'wait') {
        if (Date.now() > deadline) {
          throw new SvirtError(
            'SVIRT_ERR_OPERATION_INVALID',
            `network '${name}' is being started by process ${step.owner}, which has not finished in ${START_WAIT_MS / 1000} s`,
          );
        }
        await new Promise((r) => setTimeout(r, START_POLL_MS));
        continue;
      }
      const { n, info, left } = step;
      STARTING_HERE.add(n.uuid);
      crashPoint('net-start:claimed');
      try {
        // What a dead starter made, and what a start before a reboot (or a crash) recorded, go first.
        if (left) await this.removeLeft(n.name, left as NetworkRuntime, 'its interrupted start');
        if (n.runtime) {
          await this.removeLeft(n.name, n.runtime as NetworkRuntime, 'its last start');
          this.store.setRuntime(n.uuid, undefined);
        }
        const runtime = await startNetworkHost(info.def, this.env.paths.stateDir, (sofar) => {
          this.store.setStartProgress(n.uuid, sofar);
          if (sofar.nftTable === undefined) crashPoint('net-start:bridge');
        });
        this.env.store.tx(() => {
          this.store.setRuntime(n.uuid, runtime);
          this.store.endStart(n.uuid);
        });
        return { info: { ...info, active: true, runtime }, started: true };
      } catch (err) {
        // startNetworkHost undid its own steps; the claim goes so the next command may try again.
        this.store.endStart(n.uuid);
        throw err;
      } finally {
        STARTING_HERE.delete(n.uuid);
      }
    }
  }

  private async removeLeft(name: string, rt: NetworkRuntime, what: string): Promise<void> {
    try {
      await stopNetworkHost(name, rt);
    } catch (err) {
      this.env.warn(`network '${name}': what ${what} left could not all be removed: ${(err as Error).message}`);
    }
  }

  /** `net-destroy`: refused while running guests have a NIC on it (they would lose the network). */
  async destroy(name: string): Promise<void> {
    const n = this.find(name);
    if (!n.runtime) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `network '${n.name}' is not active`);
    const users = this.guestsOn(n.name);
    if (users.length > 0) {
      throw new SvirtError(
        'SVIRT_ERR_OPERATION_INVALID',
        `network '${n.name}' is in use by running guests (${users.join(', ')}): destroy them or detach their interfaces first`,
      );
    }
    await stopNetworkHost(n.name, n.runtime as NetworkRuntime);
    this.store.setRuntime(n.uuid, undefined);
  }

  guestsOn(network: string): string[] {
    const names = new Set<string>();
    for (const t of this.store.tapsOnNetwork(network)) names.add(this.env.store.getRunning(t.uuid)?.name ?? t.uuid);
    return [...names].sort();
  }

  setAutostart(name: string, on: boolean): void {
    this.store.setAutostart(this.find(name).uuid, on);
  }

  /**
   * The bridge of an active network, for a guest's NIC; an inactive autostart network is
   * started here (daemonless autostart), any other inactive one is an error.
   */
  async bridgeFor(name: string, what: string): Promise<string> {
    const n = this.store.byName(name);
    if (!n) throw new SvirtError('SVIRT_ERR_NO_NETWORK', `${what}: no network '${name}' (svirt net-define FILE)`);
    let info = this.info(n);
    if (!info.active) {
      if (!n.autostart)
        throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `${what}: network '${name}' is not active (svirt net-start ${name})`);
      // Idempotent: if another command started it meanwhile, its bridge is the one.
      info = (await this.startOnce(name)).info;
    }
    const bridge = info.runtime?.bridge ?? info.def.bridge.name;
    if (bridge === undefined) throw new SvirtError('SVIRT_ERR_INTERNAL', `network '${name}' has no bridge`);
    return bridge;
  }

  /** The network's current DHCP leases, from dnsmasq's leases file. */
  leases(name: string): Lease[] {
    const info = this.get(name);
    const ip = info.def.ips[0];
    let text: string;
    try {
      text = readFileSync(join(this.env.paths.stateDir, 'networks', info.def.name, 'dnsmasq.leases'), 'utf8');
    } catch {
      return []; // no lease was ever handed out
    }
    return parseLeases(text, ip?.prefix ?? 24);
  }

  dumpXml(name: string): string {
    return formatNetworkXml(this.get(name).def);
  }
}

/** dnsmasq's leases file: `expiry mac ip hostname client-id` per line (`*` for none). */
export function parseLeases(text: string, prefix: number): Lease[] {
  const out: Lease[] = [];
  for (const line of text.split('\n').slice(0, 100_000)) {
    const [expiry, mac, ip, host, client] = line.trim().split(/\s+/);
    if (expiry === undefined || mac === undefined || ip === undefined || !/^\d+$/.test(expiry)) continue;
    out.push({
      expiry: Number(expiry),
      mac: mac.toLowerCase(),
      ip,
      prefix,
      ...(host === undefined || host === '*' ? {} : { hostname: host }),
      ...(client === undefined || client === '*' ? {} : { clientId: client }),
    });
  }
  return out;
}
