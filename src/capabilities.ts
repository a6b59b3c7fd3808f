/**
 * libvirt's capabilities document for this host and security stack: one `<secmodel>` per
 * driver with its DOI and base labels (and, as comments, what the driver notes about this
 * host). `svirt capabilities` and the remote protocol print the same text.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { arch, cpus, totalmem } from 'node:os';
import type { Hypervisor } from './lifecycle/hypervisor.js';
import { installedEmulators, kvmRuns, wordsizeOf } from './qemu/emulator.js';
import { machinesOf } from './qemu/machine-types.js';

/** Escapes text and single-quoted attribute values of the capability documents (also host-facts.ts). */
export function esc(s: string): string {
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

/** One NUMA cell with the host's memory and CPUs (virsh freecell --all counts cells from here). */
function topologyLines(): string[] {
  const n = cpus().length;
  return [
    '    <topology>',
    "      <cells num='1'>",
    "        <cell id='0'>",
    `          <memory unit='KiB'>${Math.floor(totalmem() / 1024)}</memory>`,
    `          <cpus num='${n}'>`,
    ...Array.from({ length: n }, (_, i) => `            <cpu id='${i}'/>`),
    '          </cpus>',
    '        </cell>',
    '      </cells>',
    '    </topology>',
  ];
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
    ...topologyLines(),
  ];
  for (const d of hv.manager.drivers) {
    lines.push('    <secmodel>', `      <model>${esc(d.name)}</model>`, `      <doi>${esc(hv.manager.doi(d))}</doi>`);
    for (const b of hv.manager.baseLabels(d))
      lines.push(`      <baselabel type='${esc(b.virtType)}'>${esc(b.label)}</baselabel>`);
    for (const n of d.features?.() ?? []) lines.push(`      <!-- ${esc(n).replace(/--/g, '- -')} -->`);
    lines.push('    </secmodel>');
  }
  lines.push('  </host>', '');
  lines.push(...guestLines(join(hv.paths.stateDir, 'cache')));
  lines.push('</capabilities>', '');
  return lines.join('\n');
}

/**
 * One `<guest>` per installed `qemu-system-<arch>`: its emulator, machine types (aliases
 * with canonical=, as virsh shows them; virt-manager picks from these) and domain types.
 */
function guestLines(cacheDir: string): string[] {
  const out: string[] = [];
  for (const e of installedEmulators()) {
    let machines;
    try {
      machines = machinesOf(e.path, statSync(e.path), cacheDir);
    } catch {
      continue; // a binary that lists no machine types is no emulator svirt can offer
    }
    out.push(
      '  <guest>',
      '    <os_type>hvm</os_type>',
      `    <arch name='${esc(e.arch)}'>`,
      `      <wordsize>${wordsizeOf(e.arch)}</wordsize>`,
    );
    out.push(`      <emulator>${esc(e.path)}</emulator>`);
    for (const m of machines) {
      if (m.name === 'none') continue;
      const canonical = m.canonical === undefined ? '' : ` canonical='${esc(m.canonical)}'`;
      out.push(`      <machine${canonical}${m.deprecated ? " deprecated='yes'" : ''}>${esc(m.name)}</machine>`);
    }
    out.push("      <domain type='qemu'/>");
    if (existsSync('/dev/kvm') && kvmRuns(e.arch)) out.push("      <domain type='kvm'/>");
    out.push('    </arch>', '  </guest>', '');
  }
  return out;
}
