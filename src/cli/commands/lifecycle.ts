import { SvirtError } from '../../errors.js';
import { arg, type ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';
import type { DomainDef } from '../../domain/domain-def.js';
import { readXmlFile } from './read-xml.js';
import { reportMade } from '../../access/made-guests.js';

/** Kept in the XML but needing nothing from svirt: it adds its own controllers; no balloon or input is harmless headless. */
const QUIET: ReadonlySet<string> = new Set(['controller', 'memballoon', 'input', 'video', 'panic']);

/** Devices kept in the XML that svirt does not emulate yet: said once, at start. */
function warnIgnored(def: DomainDef): void {
  for (const d of def.ignoredDevices.filter((x) => !QUIET.has(x.name))) {
    process.stderr.write(
      `warning: <${d.name}>${d.line ? ` at line ${d.line}` : ''} is not supported by svirt yet; the guest runs without it\n`,
    );
  }
}

export async function runStart(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const hv = await openHypervisor(args);
  let def: DomainDef | undefined; // the one the start parsed; a managed save's restore shows none
  const rec = await hv.start(name, {
    paused: args.flags.has('paused'),
    forceBoot: args.flags.has('force-boot'),
    onDefinition: (d) => (def = d),
  });
  warnIgnored(def ?? hv.lookup(rec.name).def);
  output(args, `Domain '${rec.name}' started`, { name: rec.name, uuid: rec.uuid, pid: rec.pid, id: rec.id });
  return 0;
}

export async function runCreate(args: ParsedArgs): Promise<number> {
  const file = arg(args, 0, 'FILE');
  const xml = await readXmlFile(file);
  const hv = await openHypervisor(args);
  let def: DomainDef | undefined;
  const rec = await hv.create(xml, { paused: args.flags.has('paused'), onDefinition: (d) => (def = d) });
  reportMade(rec.uuid);
  warnIgnored(def ?? hv.lookup(rec.name).def);
  output(args, `Domain '${rec.name}' created from ${file}`, { name: rec.name, uuid: rec.uuid, pid: rec.pid, id: rec.id });
  return 0;
}

export async function runShutdown(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const mode = args.options.get('mode') ?? 'acpi';
  if (mode !== 'acpi' && mode !== 'signal')
    throw new SvirtError('SVIRT_ERR_USAGE', `shutdown: unknown mode '${mode}' (acpi, signal)`);
  const timeout = args.options.get('timeout');
  const hv = await openHypervisor(args);
  // Without --timeout this returns at once, as virsh does; the monitor cleans up when QEMU exits.
  const done = await hv.shutdown(name, { mode, timeoutMs: timeout === undefined ? 0 : Number(timeout) * 1000 });
  if (timeout !== undefined && !done) {
    throw new SvirtError('SVIRT_ERR_TIMEOUT', `domain '${name}' did not shut down within ${timeout} s`);
  }
  output(args, done ? `Domain '${name}' is shut off` : `Domain '${name}' is being shutdown`, { name, shutOff: done });
  return 0;
}

export async function runDestroy(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const hv = await openHypervisor(args);
  await hv.destroy(name);
  output(args, `Domain '${name}' destroyed`, { name });
  return 0;
}

export async function runSuspend(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const hv = await openHypervisor(args);
  await hv.suspend(name);
  output(args, `Domain '${name}' suspended`, { name });
  return 0;
}

export async function runReset(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const hv = await openHypervisor(args);
  await hv.reset(name);
  output(args, `Domain '${name}' was reset`, { name });
  return 0;
}

export async function runResume(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const hv = await openHypervisor(args);
  await hv.resume(name);
  output(args, `Domain '${name}' resumed`, { name });
  return 0;
}
