import { closeSync, ftruncateSync, openSync } from 'node:fs';

/** A sparse raw image of `mb` MiB (the matrix needs no qemu-img). */
export function makeRawImage(path: string, mb = 8): string {
  const fd = openSync(path, 'w', 0o644);
  try {
    ftruncateSync(fd, mb * 1024 * 1024);
  } finally {
    closeSync(fd);
  }
  return path;
}

/** OVMF's plain build and its empty varstore (Debian package ovmf), for guests with an nvram. */
export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';

/**
 * The matrices' guests: one raw virtio disk, TCG, started paused; a guest-agent channel and a
 * VNC display, both on sockets svirt places in the guest's runtime dir (the device attacks
 * aim at B's); optionally a pty serial console (svirt allocates it, the monitor relays it), a
 * serial console logged to a file, UEFI firmware with its own
 * nvram at `nvram` (made from OVMF's template), a TPM, a virtiofs share, a user NIC by passt.
 */
export function demoDomainXml(
  name: string,
  disk: string,
  opts: { serialLog?: string; pty?: boolean; nvram?: string; tpm?: boolean; share?: string; passt?: boolean } = {},
): string {
  const pty = opts.pty === true ? `\n    <serial type='pty'><target port='0'/></serial>` : '';
  const nic = opts.passt ? `\n    <interface type='user'><model type='virtio'/><backend type='passt'/></interface>` : '';
  const serial = opts.serialLog
    ? `\n    <serial type='file'><source path='${opts.serialLog}'/><target port='${opts.pty === true ? 1 : 0}'/></serial>`
    : '';
  const uefi = opts.nvram
    ? `<loader readonly='yes' type='pflash'>${OVMF_CODE}</loader><nvram template='${OVMF_VARS}'>${opts.nvram}</nvram>`
    : '';
  const tpm = opts.tpm === true ? "\n    <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>" : '';
  const share = opts.share
    ? `\n    <filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='${opts.share}'/><target dir='share'/></filesystem>`
    : '';
  const memory = opts.share ? "\n  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>" : '';
  return `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>${memory}
  <os><type arch='x86_64' machine='pc'>hvm</type>${uefi}</os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='${disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>${nic}${pty}${serial}${tpm}${share}
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <graphics type='vnc'><listen type='socket'/></graphics>
    <video><model type='vga'/></video>
  </devices>
</domain>
`;
}
