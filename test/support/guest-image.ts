/**
 * The real guest image of the boot tests: Debian's kernel and a busybox initramfs with
 * qemu-guest-agent, built (or found in its cache) by scripts/build-guest.sh. The guest
 * loads its drivers by device, brings every ethN up with DHCP, runs qemu-ga on the
 * org.qemu.guest_agent.0 port when there is one, and prints GUEST_BANNER before the root
 * shell it keeps on ttyS0, tty1 and hvc0.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { QEMU } from '../helpers.js';

/** Printed on a terminal of the guest (followed by ` on ttyS0`, ...) before its shell starts. */
export const GUEST_BANNER = 'svirt-guest login-free shell';
/** The prompt of the guest's shells. */
export const GUEST_PROMPT = 'svirt-guest# ';
/** Kernel command line: messages on the serial port and on the VGA console; power off on panic. */
export const GUEST_CMDLINE = 'console=tty1 console=ttyS0 panic=-1 no_timer_check';

export interface GuestImage {
  readonly dir: string;
  readonly kernel: string;
  readonly initrd: string;
  /** The kernel's release (uname -r). */
  readonly version: string;
}

const BUILD = fileURLToPath(new URL('../../../scripts/build-guest.sh', import.meta.url));
/** A first build unpacks a kernel package (and may download it): minutes, never unbounded. */
const BUILD_TIMEOUT_MS = 10 * 60_000;

let found: GuestImage | { readonly skip: string } | undefined;

/** The image (built on first use, cached on disk and for this process), or why there is none. */
export function guestImage(): GuestImage | { readonly skip: string } {
  found ??= build();
  return found;
}

/** The skip reason of a test that boots the guest image, or false. */
export function guestImageSkip(): string | false {
  const image = guestImage();
  return 'skip' in image ? image.skip : false;
}

function build(): GuestImage | { readonly skip: string } {
  const r = spawnSync('bash', [BUILD], { encoding: 'utf8', timeout: BUILD_TIMEOUT_MS, maxBuffer: 1 << 20 });
  if (r.error || r.status !== 0) {
    const why = r.error?.message ?? (r.stderr.trim().split('\n').pop() || `exit ${r.status ?? r.signal}`);
    return { skip: `no guest image (scripts/build-guest.sh: ${why})` };
  }
  const dir = r.stdout.trim().split('\n').pop() ?? '';
  const image = { dir, kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.img'), version: '' };
  if (!existsSync(image.kernel) || !existsSync(image.initrd)) {
    return { skip: `scripts/build-guest.sh printed ${JSON.stringify(dir)}, which holds no vmlinuz and initrd.img` };
  }
  return { ...image, version: readFileSync(join(dir, 'version'), 'utf8').trim() };
}

/** The `<os>` element of a guest that boots the image directly (`machine` defaults to pc). */
export function guestOsXml(image: GuestImage, machine = 'pc', cmdline = GUEST_CMDLINE): string {
  return `<os>
    <type arch='x86_64' machine='${machine}'>hvm</type>
    <kernel>${image.kernel}</kernel>
    <initrd>${image.initrd}</initrd>
    <cmdline>${cmdline}</cmdline>
  </os>`;
}

/**
 * A guest of the image with its serial port on a pty (logged to `log`, started empty), a
 * console on it, and `devices` more (a channel, say).
 */
export function ptyGuestXml(image: GuestImage, name: string, log: string, devices = ''): string {
  return `<domain type='qemu'><name>${name}</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>
  ${guestOsXml(image)}
  <devices><emulator>${QEMU}</emulator>
    <serial type='pty'><log file='${log}' append='off'/><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>${devices}
  </devices></domain>`;
}
