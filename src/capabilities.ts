/**
 * libvirt's capabilities document for this host and security stack: one `<secmodel>` per
 * driver with its DOI and base labels (and, as comments, what the driver notes about this
 * host). `svirt capabilities` and the remote protocol print the same text.
 */
import { existsSync, readFileSync } from 'node:fs';
import { arch } from 'node:os';
import type { Hypervisor } from './lifecycle/hypervisor.js';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;');
}

export function hostUuid(): string {
  try {
    return readFileSync('/etc/machine-id', 'utf8')
      .trim()
      .replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
  } catch {
    return ''; // no machine id: the element stays empty
  }
}

export function machineArch(): string {
  return arch() === 'x64' ? 'x86_64' : arch();
}

export function capabilitiesXml(hv: Hypervisor): string {
  const a = machineArch();
  const lines = [
    '<capabilities>',
    '',
    '  <host>',
    `    <uuid>${esc(hostUuid())}</uuid>`,
    '    <cpu>',
    `      <arch>${a}</arch>`,
    '    </cpu>',
  ];
  for (const d of hv.manager.drivers) {
    lines.push('    <secmodel>', `      <model>${esc(d.name)}</model>`, `      <doi>${esc(hv.manager.doi(d))}</doi>`);
    for (const b of hv.manager.baseLabels(d))
      lines.push(`      <baselabel type='${esc(b.virtType)}'>${esc(b.label)}</baselabel>`);
    for (const n of d.features?.() ?? []) lines.push(`      <!-- ${esc(n).replace(/--/g, '- -')} -->`);
    lines.push('    </secmodel>');
  }
  lines.push(
    '  </host>',
    '',
    '  <guest>',
    '    <os_type>hvm</os_type>',
    `    <arch name='${a}'>`,
    '      <wordsize>64</wordsize>',
  );
  lines.push('      <emulator>/usr/bin/qemu-system-x86_64</emulator>', "      <domain type='qemu'/>");
  if (existsSync('/dev/kvm')) lines.push("      <domain type='kvm'/>");
  lines.push('    </arch>', '  </guest>', '', '</capabilities>', '');
  return lines.join('\n');
}
