/**
 * Guests for the `--copy-storage-all` tests: each test host has an image directory of its own
 * (the hosts share no storage), and the guest's definition on each host names its own file.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VIRSH } from '../remote/support.js';
import type { GuestImage } from '../support/guest-image.js';
import type { TestHost } from '../support/hosts.js';
import { ORIGINAL, guestXml } from './support.js';

export const QEMU_IO = '/usr/bin/qemu-io';
export const QEMU_IMG = '/usr/bin/qemu-img';

/** The image directory of host `h` (0711: the guest's uid reaches its image by path only through svirt's fds anyway). */
export function imageDir(dir: string, h: TestHost): string {
  const d = join(dir, `${h.name}-images`);
  mkdirSync(d, { recursive: true, mode: 0o711 });
  return d;
}

export function imagePath(dir: string, h: TestHost, format: 'raw' | 'qcow2'): string {
  return join(imageDir(dir, h), `disk.${format}`);
}

/** The source's image: 32 MiB, its first MiB 0x5a (qemu-io), owned by ORIGINAL. */
export function makeSourceImage(path: string, format: 'raw' | 'qcow2'): void {
  run(QEMU_IMG, ['create', '-q', '-f', format, path, '32M']);
  run(QEMU_IO, ['-f', format, '-c', 'write -P 0x5a 0 1M', '-c', 'write -P 0xa5 31M 1M', path]);
  chownSync(path, ORIGINAL.uid, ORIGINAL.gid);
  chmodSync(path, ORIGINAL.mode);
}

/** Whether the image holds `pattern` over [offset, offset+len) (read with force-share: the guest may run). */
export function holds(path: string, format: 'raw' | 'qcow2', pattern: number, offset: string, len: string): boolean {
  const r = spawnSync(QEMU_IO, ['-r', '-U', '-f', format, '-c', `read -P 0x${pattern.toString(16)} ${offset} ${len}`, path], {
    encoding: 'utf8',
  });
  return r.status === 0 && !/Pattern verification failed/.test(r.stdout + r.stderr);
}

export function run(cmd: string, args: readonly string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** The guest as host `h` runs it, its disk `disk` of `format`. */
export function copyXml(
  image: GuestImage | undefined,
  dir: string,
  disk: string,
  format: 'raw' | 'qcow2',
  h: TestHost,
  tag = 'copy',
): string {
  const f = join(dir, `${h.name}-${tag}.xml`);
  writeFileSync(
    f,
    guestXml(image, dir, disk, h).replace("<driver name='qemu' type='raw'/>", `<driver name='qemu' type='${format}'/>`),
  );
  return f;
}

/** Owner and mode of a file. */
export function ownerOf(path: string): { uid: number; gid: number; mode: number } {
  const st = statSync(path);
  return { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
}

/** virsh against a serve's URI (no shell). */
export function virsh(uri: string, args: readonly string[]): { code: number; out: string } {
  const r = spawnSync(VIRSH, ['-q', '-c', uri, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? 1, out: `${r.stdout}${r.stderr}` };
}
