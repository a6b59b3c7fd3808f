/**
 * dnsmasq for one network, confined: svirt writes its whole configuration (`--conf-file`
 * only, nothing from /etc/dnsmasq.d), runs it in the foreground under svirt-exec with a
 * Landlock ruleset of its own (its binary and libraries, /etc read-only, its network's state
 * dir; TCP bind and connect only on port 53), and dnsmasq drops to the `dnsmasq` user once
 * its sockets are bound. It keeps CAP_NET_ADMIN/CAP_NET_RAW (DHCP needs them), nothing else.
 */
import { spawn } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SvirtError } from '../errors.js';
import { landlockAbi, svirtExecPath } from '../host/native.js';
import { isAlive, processStartTime, signal, waitGone, type ProcessIdentity } from '../host/proc.js';
import type { ConfinementSpec, LandlockPathRule } from '../security/confinement.js';
import { fsRightsForAbi, netRightsForAbi, scopesForAbi } from '../security/landlock/abi.js';
import { dnsmasqConf } from './dnsmasq-conf.js';
import type { NetworkDef } from './network-def.js';

export const DNSMASQ = '/usr/sbin/dnsmasq';

export interface DnsmasqFiles {
  readonly dir: string;
  readonly conf: string;
  readonly leases: string;
  readonly pid: string;
  readonly log: string;
}

export function dnsmasqFiles(dir: string): DnsmasqFiles {
  return {
    dir,
    conf: join(dir, 'dnsmasq.conf'),
    leases: join(dir, 'dnsmasq.leases'),
    pid: join(dir, 'dnsmasq.pid'),
    log: join(dir, 'dnsmasq.log'),
  };
}

/** The confinement of a network's dnsmasq (undefined Landlock where the kernel has none). */
export function dnsmasqSpec(files: DnsmasqFiles): ConfinementSpec {
  let abi = 0;
  try {
    abi = landlockAbi();
  } catch {
    abi = 0; // no Landlock in this kernel: the user drop and the fixed configuration remain
  }
  const rx: LandlockPathRule['access'] = ['read_file', 'read_dir', 'execute'];
  const rules: LandlockPathRule[] = [
    { path: DNSMASQ, access: ['read_file', 'execute'] },
    ...['/usr/lib', '/lib', '/lib64', '/usr/lib64'].map((path) => ({ path, access: rx, optional: true })),
    // passwd/group for its user, resolv.conf for upstream DNS, localtime: read only.
    { path: '/etc', access: ['read_file', 'read_dir'] },
    { path: '/dev/null', access: ['read_file', 'write_file'] },
    { path: '/dev/urandom', access: ['read_file'], optional: true },
    { path: files.dir, access: ['read_file', 'write_file', 'read_dir', 'make_reg', 'remove_file', 'truncate'] },
  ];
  const handledFs = fsRightsForAbi(abi);
  return {
    version: 1,
    rlimits: [],
    noNewPrivs: true,
    keepFds: [],
    ...(abi === 0
      ? {}
      : {
          landlock: {
            handledFs,
            handledNet: netRightsForAbi(abi),
            scoped: scopesForAbi(abi).filter((s) => s !== 'signal'), // svirt (outside) signals it; scoping is one-way anyway
            pathRules: rules.map((r) => ({ ...r, access: r.access.filter((a) => handledFs.includes(a)) })),
            netRules: [{ port: 53, access: netRightsForAbi(abi) }],
            bestEffort: true,
            logNewExec: false,
          },
        }),
  };
}

/**
 * Writes the configuration and starts dnsmasq; resolves once it runs (or fails with the
 * tail of its log). The caller records the returned process and ends it with stopDnsmasq;
 * `spawned` hears of it at once, before the wait, so a caller that dies meanwhile has it on record.
 */
export async function startDnsmasq(
  net: NetworkDef,
  bridge: string,
  files: DnsmasqFiles,
  spawned: (p: ProcessIdentity) => void = () => undefined,
): Promise<ProcessIdentity> {
  writeFileSync(files.conf, dnsmasqConf(net, bridge, { leases: files.leases, pid: files.pid }), { mode: 0o644 });
  const log = openSync(files.log, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
  let pid: number | undefined;
  try {
    const child = spawn(
      svirtExecPath(),
      ['--spec-fd', '3', '--', DNSMASQ, `--conf-file=${files.conf}`, '--keep-in-foreground', '--log-facility=-'],
      { detached: true, stdio: ['ignore', log, log, 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } },
    );
    (child.stdio[3] as NodeJS.WritableStream).end(JSON.stringify(dnsmasqSpec(files)));
    child.unref();
    pid = child.pid;
  } finally {
    closeSync(log);
  }
  if (pid === undefined) throw new SvirtError('SVIRT_ERR_HOST', `network '${net.name}': cannot run ${DNSMASQ}`);
  const startTime = processStartTime(pid);
  if (startTime !== undefined) spawned({ pid, startTime });
  // dnsmasq binds its sockets and drops to its user in well under a second; an error exits it.
  for (let i = 0; i < 30; i++) {
    await new Promise((r) => setTimeout(r, 50));
    if (startTime === undefined || !isAlive({ pid, startTime })) {
      throw new SvirtError('SVIRT_ERR_HOST', `network '${net.name}': dnsmasq exited: ${tail(files.log)}`, {
        details: { log: files.log },
      });
    }
    if (/started, version/.test(tail(files.log, 20))) break;
  }
  return { pid, startTime: startTime ?? 0 };
}

function tail(path: string, lines = 3): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-lines).join('; ');
  } catch {
    return '(no log)'; // nothing written yet
  }
}

/** Ends a network's dnsmasq, only if that pid is still the process svirt started. */
export async function stopDnsmasq(p: ProcessIdentity): Promise<void> {
  if (!isAlive(p)) return;
  signal(p.pid, 'SIGTERM');
  if (await waitGone(p, 3000, 2)) return;
  if (isAlive(p)) signal(p.pid, 'SIGKILL');
  await waitGone(p, 5000, 2);
}
