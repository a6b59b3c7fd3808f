import { processStartTime } from '../../host/proc.js';
import { arg, type ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';
import type { Hypervisor, DomainInfo } from '../../lifecycle/hypervisor.js';
import { readFileSync } from 'node:fs';

/** virsh's `%-15s %s` lines, the security lines from the primary driver. */
export async function run(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args);
  const info = hv.lookup(arg(args, 0, 'NAME'));
  const fields = await dominfoFields(hv, info);
  // A field with a list (a note per file) prints one line per item; --json keeps the list.
  const lines = fields.flatMap(([k, v]) => (typeof v === 'string' ? [v] : v).map((x) => `${(k + ':').padEnd(15)} ${x}`));
  output(args, lines.join('\n') + '\n', Object.fromEntries(fields));
  return 0;
}

export async function runDomstate(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args);
  const info = hv.lookup(arg(args, 0, 'NAME'));
  output(args, info.state, { state: info.state });
  return 0;
}

export async function dominfoFields(hv: Hypervisor, info: DomainInfo): Promise<[string, string | readonly string[]][]> {
  const { def, record } = info;
  const fields: [string, string | readonly string[]][] = [
    ['Id', record ? String(record.id) : '-'],
    ['Name', def.name],
    ['UUID', def.uuid],
    ['OS Type', def.os.type],
    ['State', info.state],
    ['CPU(s)', String(def.vcpusCurrent ?? def.vcpus)],
  ];
  if (record?.pid) fields.push(['CPU time', `${cpuSeconds(record.pid).toFixed(1)}s`]);
  fields.push(
    ['Max memory', `${def.memoryKiB} KiB`],
    ['Used memory', `${def.currentMemoryKiB} KiB`],
    ['Persistent', info.persistent ? 'yes' : 'no'],
    ['Autostart', hv.autostart(info) ? 'enable' : 'disable'],
    ['Managed save', hv.hasManagedSave(info) ? 'yes' : 'no'],
  );
  const sec = await hv.describe(info);
  fields.push(['Security model', sec.model], ['Security DOI', sec.doi]);
  if (record?.pid) {
    const [primary, ...rest] = sec.labels;
    if (primary && primary.type !== 'none' && primary.label !== '') {
      const mode = primary.hasEnforcingMode ? (primary.enforcing ? ' (enforcing)' : ' (permissive)') : '';
      fields.push(['Security label', `${primary.label}${mode}`]);
    } else if (primary) {
      fields.push(['Security label', '']);
    }
    for (const l of rest) fields.push([`Security label (${l.model})`, l.type === 'none' ? 'none' : l.label]);
    for (const l of sec.labels) if (l.notes.length > 0) fields.push([`Security notes (${l.model})`, l.notes.join('; ')]);
    for (const l of sec.labels) if (l.files.length > 0) fields.push([`File notes (${l.model})`, l.files]);
  }
  // The guest's cgroup (docs/cgroups.md): its limits read back while it runs, else the definition's tuning
  fields.push(
    ...(await import('../../lifecycle/cgroup/describe.js')).cgroupFields(
      hv.paths.stateDir,
      def,
      record?.pid !== undefined && record.pid !== null,
    ),
  );
  return fields;
}

/** utime + stime of the QEMU process, in seconds. */
function cpuSeconds(pid: number): number {
  if (processStartTime(pid) === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / 100;
  } catch {
    return 0; // exited between the two reads
  }
}
