import { arch, hostname } from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import type { ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;');
}

/** libvirt's capabilities XML: host, one <secmodel> per driver of the stack, the guest types. */
export async function run(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args, { reconcile: false });
  const machineArch = arch() === 'x64' ? 'x86_64' : arch();
  let hostUuid = '';
  try {
    hostUuid = readFileSync('/etc/machine-id', 'utf8').trim().replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
  } catch {
    hostUuid = ''; // no machine id: the element is left empty
  }
  const models = hv.manager.drivers.map((d) => ({
    model: d.name,
    doi: d.doi(),
    baselabels: d.baseLabels(),
    notes: d.features?.() ?? [],
  }));
  const lines = ['<capabilities>', '', '  <host>', `    <uuid>${esc(hostUuid)}</uuid>`, '    <cpu>', `      <arch>${machineArch}</arch>`, '    </cpu>'];
  for (const m of models) {
    lines.push('    <secmodel>', `      <model>${m.model}</model>`, `      <doi>${esc(m.doi)}</doi>`);
    for (const b of m.baselabels) lines.push(`      <baselabel type='${b.virtType}'>${esc(b.label)}</baselabel>`);
    for (const n of m.notes) lines.push(`      <!-- ${esc(n).replace(/--/g, '- -')} -->`);
    lines.push('    </secmodel>');
  }
  lines.push('  </host>', '');
  const kvm = existsSync('/dev/kvm');
  lines.push(
    '  <guest>',
    '    <os_type>hvm</os_type>',
    `    <arch name='${machineArch}'>`,
    '      <wordsize>64</wordsize>',
    '      <emulator>/usr/bin/qemu-system-x86_64</emulator>',
    "      <domain type='qemu'/>",
    ...(kvm ? ["      <domain type='kvm'/>"] : []),
    '    </arch>',
    '  </guest>',
    '',
    '</capabilities>',
  );
  output(args, lines.join('\n') + '\n', { host: { uuid: hostUuid, arch: machineArch, hostname: hostname() }, secmodels: models, kvm });
  return 0;
}
