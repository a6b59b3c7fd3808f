/**
 * A private sshd for the `qemu+ssh://` tests: its own config, host key, client key and
 * authorized_keys in a temp dir, listening only on an address inside the test's network
 * namespace, and running in a mount namespace of its own where a temp dir stands in for /run
 * (so /run/libvirt/libvirt-sock, where libvirt's virt-ssh-helper and `nc` look, is the test's
 * socket and the host's real /run is never touched). The client side is an `ssh` wrapper
 * (virsh's `command=` URI parameter) with its own config: the host key pinned in a known_hosts
 * of the test (StrictHostKeyChecking yes), batch mode, no agent, nothing read or written in
 * ~/.ssh.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { stopChild } from '../../src/host/stop-child.js';

export const SSHD = '/usr/sbin/sshd';
const SSH = '/usr/bin/ssh';
const SSH_KEYGEN = '/usr/bin/ssh-keygen';

export function sshdSkip(): string | false {
  if (!existsSync(SSHD)) return 'sshd is not installed (apt-get install openssh-server)';
  if (!existsSync(SSH) || !existsSync(SSH_KEYGEN)) return 'ssh is not installed (openssh-client)';
  return false;
}

export interface TestSshd {
  /** The dir that is /run inside sshd's mount namespace (its libvirt/ holds the socket). */
  readonly run: string;
  /** The ssh wrapper for virsh's `command=`. */
  readonly sshCommand: string;
  readonly child: ChildProcess;
}

function keygen(path: string): void {
  const r = spawnSync(SSH_KEYGEN, ['-q', '-t', 'ed25519', '-N', '', '-f', path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen: ${r.stderr}`);
}

/** Starts sshd in namespace `ns` on `addr`:22; ended when the test ends (and with the namespace). */
export async function startSshd(t: TestContext, ns: string, addr: string, dir: string): Promise<TestSshd> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const run = join(dir, 'run');
  mkdirSync(join(run, 'sshd'), { recursive: true, mode: 0o755 });
  mkdirSync(join(run, 'libvirt'), { recursive: true, mode: 0o755 });
  chmodSync(run, 0o755);
  const hostKey = join(dir, 'host_ed25519');
  const userKey = join(dir, 'id_ed25519');
  keygen(hostKey);
  keygen(userKey);
  const authorized = join(dir, 'authorized_keys');
  writeFileSync(authorized, readFileSync(`${userKey}.pub`), { mode: 0o600 });
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `ListenAddress ${addr}`,
      'Port 22',
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorized}`,
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      // The keys live under /tmp (world-writable), which StrictModes would refuse.
      'StrictModes no',
      'AllowUsers root',
      'AllowTcpForwarding no',
      'X11Forwarding no',
      'PermitTunnel no',
      'MaxStartups 10:30:20',
      'LoginGraceTime 20',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, `${addr} ${readFileSync(`${hostKey}.pub`, 'utf8').trim()}\n`, { mode: 0o600 });
  const clientConfig = join(dir, 'ssh_config');
  writeFileSync(
    clientConfig,
    [
      'Host *',
      '  BatchMode yes',
      '  StrictHostKeyChecking yes',
      `  UserKnownHostsFile ${knownHosts}`,
      '  GlobalKnownHostsFile /dev/null',
      '  IdentitiesOnly yes',
      `  IdentityFile ${userKey}`,
      '  IdentityAgent none',
      '  ConnectTimeout 10',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const sshCommand = join(dir, 'ssh');
  writeFileSync(sshCommand, `#!/bin/sh\nexec ${SSH} -F ${clientConfig} "$@"\n`, { mode: 0o755 });

  // A private mount namespace where the temp dir is /run: sshd's privsep dir and libvirt's socket dir.
  const script = `mount --bind '${run}' /run && exec ${SSHD} -D -e -f '${config}'`;
  const child = spawn('ip', ['netns', 'exec', ns, 'unshare', '--mount', '--propagation', 'private', 'sh', '-c', script], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    log += d.toString();
    if (process.env['SVIRT_TEST_SSHD_LOG'] === '1') process.stderr.write(`[sshd] ${d.toString()}`);
  });
  t.after(() => stopChild(child, 10_000));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sshd did not listen within 10 s: ${log}`)), 10_000);
    const check = (): void => {
      if (log.includes('Server listening on')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stderr?.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sshd exited (${code}): ${log}`));
    });
  });
  return { run, sshCommand, child };
}
