/** Is libvirt installed and usable here, and `--with-libvirt`'s install step. */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { runTimed } from './proc.js';

export const LIBVIRTD = '/usr/sbin/libvirtd';
export const VIRTLOGD = '/usr/sbin/virtlogd';
export const VIRSH = '/usr/bin/virsh';
const PACKAGES = ['libvirt-daemon', 'libvirt-daemon-driver-qemu', 'libvirt-clients'];

/** Why libvirt cannot be measured here, or undefined when it can. */
export function libvirtMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'qemu:///system needs root';
  for (const f of [LIBVIRTD, VIRTLOGD, VIRSH])
    if (!existsSync(f)) return `${f} is not installed (packages: ${PACKAGES.join(' ')})`;
  if (!qemuDriverInstalled()) return 'the libvirt QEMU driver (libvirt-daemon-driver-qemu) is not installed';
  if (!hasUser('libvirt-qemu')) return "user 'libvirt-qemu' (QEMU's user in Debian's libvirt build) does not exist";
  return undefined;
}

function qemuDriverInstalled(): boolean {
  for (const lib of ['/usr/lib', '/usr/lib64']) {
    let entries: string[] = [];
    try {
      entries = readdirSync(lib);
    } catch {
      continue; // no such dir
    }
    for (const e of [...entries.map((x) => join(lib, x)), lib]) {
      if (existsSync(join(e, 'libvirt', 'connection-driver', 'libvirt_driver_qemu.so'))) return true;
    }
  }
  return false;
}

function hasUser(name: string): boolean {
  try {
    return readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .some((l) => l.startsWith(`${name}:`));
  } catch {
    return false; // no passwd file: no such user
  }
}

export function groupEntry(name: string): { gid: number; members: string[] } | undefined {
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const [n, , gid, members] = line.split(':');
      if (n === name) return { gid: Number(gid), members: (members ?? '').split(',').filter((m) => m !== '') };
    }
  } catch {
    // no group file: no such group
  }
  return undefined;
}

/**
 * `--with-libvirt`: installs the daemon, its QEMU driver and virsh (no recommends, so no
 * dnsmasq, polkit or systemd units started), and creates the `libvirt-qemu` user that
 * libvirt-daemon-system would (Debian's libvirt runs QEMU as that user).
 */
export async function installLibvirt(log: (l: string) => void): Promise<void> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  log('  installing libvirt: apt-get update');
  await runTimed(['apt-get', 'update'], { env, check: true });
  log(`  installing libvirt: apt-get install -y --no-install-recommends ${PACKAGES.join(' ')}`);
  await runTimed(['apt-get', 'install', '-y', '--no-install-recommends', ...PACKAGES], { env, check: true });
  if (!hasUser('libvirt-qemu')) {
    log("  creating the system user 'libvirt-qemu'");
    await runTimed(
      [
        'useradd',
        '--system',
        '--no-create-home',
        '--home-dir',
        '/var/lib/libvirt',
        '--shell',
        '/usr/sbin/nologin',
        '--user-group',
        'libvirt-qemu',
      ],
      { check: true },
    );
  }
}
