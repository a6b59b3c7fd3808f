import { randomUUID } from 'node:crypto';
import { chmodSync, closeSync, ftruncateSync, mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const QEMU = '/usr/bin/qemu-system-x86_64';
export const IMAGE_MIB = 4;

/**
 * A scratch dir every guest uid can traverse (0711): under dac, QEMU runs as a guest uid
 * and libvirt's QEMU as libvirt-qemu, and both must reach their files inside.
 */
export function workDir(prefix = 'svirt-bench-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o711);
  return dir;
}

/** A sparse raw image, root-owned 0644 (the dac driver hands it over and gives it back). */
export function makeImage(path: string, mib = IMAGE_MIB): string {
  writeFileSync(path, '', { mode: 0o644 });
  const fd = openSync(path, 'r+');
  try {
    ftruncateSync(fd, mib * 1024 * 1024);
  } finally {
    closeSync(fd);
  }
  chmodSync(path, 0o644);
  return path;
}

export interface GuestSpec {
  readonly name: string;
  readonly uuid: string;
  readonly image: string;
}

export function guestSpec(name: string, image: string): GuestSpec {
  return { name, uuid: randomUUID(), image };
}

/**
 * The one guest every contender starts: TCG (`type='qemu'`), 64 MiB, one vCPU, one raw
 * virtio disk, no USB, no balloon (libvirt would add both by default; svirt never does).
 */
export function guestXml(g: GuestSpec): string {
  return `<domain type='qemu'>
  <name>${g.name}</name>
  <uuid>${g.uuid}</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>${QEMU}</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='${g.image}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

export function writeGuestXml(dir: string, g: GuestSpec): string {
  const file = join(dir, `${g.name}.xml`);
  writeFileSync(file, guestXml(g));
  return file;
}
