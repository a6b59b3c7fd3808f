/**
 * What the connect-level procedures report about the host: the capabilities XML (one
 * `<secmodel>` per driver of the stack, as `svirt capabilities` prints it), QEMU's version,
 * the connection URI.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { arch } from 'node:os';
import type { Hypervisor } from '../hypervisor.js';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;');
}

function hostUuid(): string {
  try {
    return readFileSync('/etc/machine-id', 'utf8').trim().replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
  } catch {
    return ''; // no machine id: the element stays empty, as `svirt capabilities` does
  }
}

export function machineArch(): string {
  return arch() === 'x64' ? 'x86_64' : arch();
}

/** libvirt's capabilities document for this host and security stack. */
export function capabilitiesXml(hv: Hypervisor): string {
  const a = machineArch();
  const lines = ['<capabilities>', '', '  <host>', `    <uuid>${esc(hostUuid())}</uuid>`, '    <cpu>', `      <arch>${a}</arch>`, '    </cpu>'];
  for (const d of hv.manager.drivers) {
    lines.push('    <secmodel>', `      <model>${esc(d.name)}</model>`, `      <doi>${esc(d.doi())}</doi>`);
    for (const b of d.baseLabels()) lines.push(`      <baselabel type='${esc(b.virtType)}'>${esc(b.label)}</baselabel>`);
    lines.push('    </secmodel>');
  }
  lines.push('  </host>', '', '  <guest>', '    <os_type>hvm</os_type>', `    <arch name='${a}'>`, '      <wordsize>64</wordsize>');
  lines.push('      <emulator>/usr/bin/qemu-system-x86_64</emulator>', "      <domain type='qemu'/>");
  if (existsSync('/dev/kvm')) lines.push("      <domain type='kvm'/>");
  lines.push('    </arch>', '  </guest>', '', '</capabilities>', '');
  return lines.join('\n');
}

/** QEMU's version as libvirt encodes it (major * 1,000,000 + minor * 1,000 + micro); 0 when unknown. */
export function qemuVersion(emulator = '/usr/bin/qemu-system-x86_64'): number {
  const r = spawnSync(emulator, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  const m = /version (\d+)\.(\d+)\.(\d+)/.exec(r.stdout ?? '');
  if (!m) return 0;
  return Number(m[1]) * 1_000_000 + Number(m[2]) * 1_000 + Number(m[3]);
}

/** The libvirt version svirt speaks the protocol of (Debian 12's 9.0.0). */
export const LIBVIRT_VERSION = 9_000_000;

/** qemu:///system for a root server, qemu:///session otherwise (libvirt's two QEMU URIs). */
export function connectUri(uid: number): string {
  return uid === 0 ? 'qemu:///system' : 'qemu:///session';
}
